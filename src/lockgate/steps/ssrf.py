"""The ``api`` step's guard against server-side request forgery.

A URL is allowed only over http or https, and only when the address its host resolves to
is public — or explicitly allowed in settings. The host is resolved once and the request
goes to that very address, so a DNS answer cannot change between the check and the call.
Alternate spellings (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) resolve to the
address they mean and are judged by it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from lockgate.errors import StepError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(StepError):
    """The URL may not be called."""


@dataclass(frozen=True)
class Target:
    """Where a request really goes: the checked address, and the name it was asked for."""

    url: httpx.URL
    host: str
    address: IPAddress

    @property
    def pinned(self) -> httpx.URL:
        """The URL with the host replaced by the checked address."""
        host = str(self.address) if self.address.version == 4 else f"[{self.address}]"
        return self.url.copy_with(host=host)


def _forbidden(ip: IPAddress) -> str | None:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
    ):
        if flag:
            return label
    if ip.version == 6 and ip in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    return None


def _allowed(host: str, ip: IPAddress, allow: Sequence[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


async def check(url: str | httpx.URL, allow: Sequence[str]) -> Target:
    """Resolve and judge ``url``; :class:`Refused` says why it may not be called."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise Refused(f"only http and https URLs are allowed, not {parsed.scheme or 'none'!r}")
    host = parsed.host
    if not host:
        raise Refused(f"URL {str(parsed)!r} has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
    address = ipaddress.ip_address(infos[0][4][0])
    if not _allowed(host, address, allow):
        for info in infos:
            reason = _forbidden(ipaddress.ip_address(info[4][0]))
            if reason is not None:
                raise Refused(
                    f"{host!r} resolves to {info[4][0]}, a {reason} address; "
                    "allow it in settings (LOCKGATE_API_ALLOW) if this is intended"
                )
    return Target(url=parsed, host=host, address=address)
