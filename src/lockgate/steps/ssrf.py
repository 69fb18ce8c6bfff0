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

from lockgate.errors import Refused as Refused  # its home is the one error tree

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


#: IPv6 prefixes that carry an IPv4 address in their low 32 bits (NAT64, well-known and
#: local-use), judged by that address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
#: IPv4-compatible addresses (deprecated ``::a.b.c.d``).
_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if ip.version == 4:
        return None
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's (server, client): the one traffic reaches
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        return low
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: or ::1, judged as themselves
        return low
    return None


def _forbidden(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be called, or ``None`` for a global unicast address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = _forbidden(inner)
        if reason is not None:
            return reason  # the address it carries is what traffic reaches
        return None  # mapped, 6to4, Teredo and NAT64 reach the global IPv4 address
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
    if ip.version == 6 and (ip in _UNIQUE_LOCAL or ip in _SITE_LOCAL):
        return "unique-local" if ip in _UNIQUE_LOCAL else "site-local"
    if not ip.is_global or any(ip in net for net in _NOT_GLOBAL):
        return "non-global"  # carrier-grade NAT, benchmarking, documentation, ...
    return None


#: Special-purpose ranges Python's ``is_global`` lets through (IETF protocol assignments).
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("2001::/23"))
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


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
