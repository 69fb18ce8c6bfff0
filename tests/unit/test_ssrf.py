"""The api step's SSRF guard refuses every non-global address, however it is spelled."""

from __future__ import annotations

import pytest

from lockgate.steps.ssrf import Refused, check

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.100.100.200", "carrier-grade NAT, where one cloud's metadata service answers"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fe80::1]", "link-local"),
    ("[fc00::1]", "unique-local"),
    ("[fd12:3456::1]", "unique-local"),
    ("[fec0::1]", "site-local (deprecated)"),
    ("[ff02::1]", "multicast"),
    ("[2001:db8::1]", "documentation"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
    ("[::127.0.0.1]", "IPv4-compatible loopback"),
    ("[::10.0.0.1]", "IPv4-compatible private"),
    ("[2002:a00:1::1]", "6to4 carrying 10.0.0.1"),
    ("[2002:7f00:1::1]", "6to4 carrying 127.0.0.1"),
    ("[2002:a9fe:a9fe::1]", "6to4 carrying 169.254.169.254"),
    ("[2001:0:4136:e378:8000:63bf:f5ff:fffe]", "Teredo carrying 10.0.0.1"),
    ("[64:ff9b::a9fe:a9fe]", "NAT64 carrying 169.254.169.254"),
    ("[64:ff9b::7f00:1]", "NAT64 carrying 127.0.0.1"),
    ("[64:ff9b:1::a00:1]", "local-use NAT64 carrying 10.0.0.1"),
    ("2130706433", "127.0.0.1 as one number"),
    ("0x7f.1", "127.0.0.1 in hex"),
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "[2606:4700:4700::1111]",
    "[2002:808:808::1]",
    "[64:ff9b::808:808]",
]


@pytest.mark.parametrize(("host", "why"), REFUSED)
async def test_non_global_addresses_are_refused(host: str, why: str) -> None:
    """Threat: SSRF into the host, its network or a cloud metadata service."""
    with pytest.raises(Refused):
        await check(f"http://{host}/", allow=())


@pytest.mark.parametrize("host", ALLOWED)
async def test_global_addresses_pass(host: str) -> None:
    """Public addresses, also carried in 6to4 and NAT64, may be called."""
    target = await check(f"http://{host}/", allow=())
    assert target.address is not None


async def test_an_allowed_network_may_be_reached() -> None:
    """``LOCKGATE_API_ALLOW`` opens a private network on purpose."""
    target = await check("http://10.1.2.3/", allow=("10.0.0.0/8",))
    assert str(target.address) == "10.1.2.3"
