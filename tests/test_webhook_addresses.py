"""The webhook address check against the IANA special-purpose registries, row by row, written
out here independently of the module's table; the addresses just outside the ranges most
easily mistaken for public; the IPv6 forms embedding an IPv4 address; and Python's own
``is_global`` as an oracle the check must be at least as strict as."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.webhooks.addresses import (
    SPECIAL_PURPOSE,
    private_address_reason,
    special_purpose_reason,
)

# (an address inside, the registry row's block, its RFC): one per row of the table
ROWS = [
    ("0.1.2.3", "0.0.0.0/8", "RFC 791"),
    ("0.0.0.0", "0.0.0.0/32", "RFC 1122"),
    ("10.1.2.3", "10.0.0.0/8", "RFC 1918"),
    ("100.100.100.200", "100.64.0.0/10", "RFC 6598"),  # a cloud's metadata address
    ("127.0.0.1", "127.0.0.0/8", "RFC 1122"),
    ("169.254.169.254", "169.254.0.0/16", "RFC 3927"),
    ("172.31.255.255", "172.16.0.0/12", "RFC 1918"),
    ("192.0.0.200", "192.0.0.0/24", "RFC 6890"),
    ("192.0.0.7", "192.0.0.0/29", "RFC 7335"),
    ("192.0.0.8", "192.0.0.8/32", "RFC 7600"),
    ("192.0.0.9", "192.0.0.9/32", "RFC 7723"),
    ("192.0.0.10", "192.0.0.10/32", "RFC 8155"),
    ("192.0.0.170", "192.0.0.170/32", "RFC 8880"),
    ("192.0.0.171", "192.0.0.171/32", "RFC 8880"),
    ("192.0.2.1", "192.0.2.0/24", "RFC 5737"),
    ("192.31.196.1", "192.31.196.0/24", "RFC 7535"),
    ("192.52.193.1", "192.52.193.0/24", "RFC 7450"),
    ("192.88.99.1", "192.88.99.0/24", "RFC 7526"),
    ("192.88.99.2", "192.88.99.2/32", "RFC 6751"),
    ("192.168.1.1", "192.168.0.0/16", "RFC 1918"),
    ("192.175.48.1", "192.175.48.0/24", "RFC 7534"),
    ("198.19.255.255", "198.18.0.0/15", "RFC 2544"),
    ("198.51.100.7", "198.51.100.0/24", "RFC 5737"),
    ("203.0.113.9", "203.0.113.0/24", "RFC 5737"),
    ("250.1.2.3", "240.0.0.0/4", "RFC 1112"),
    ("255.255.255.255", "255.255.255.255/32", "RFC 919"),
    ("224.0.0.251", "224.0.0.0/4", "RFC 5771"),
    ("::1", "::1/128", "RFC 4291"),
    ("::", "::/128", "RFC 4291"),
    ("::ffff:0:0", "::ffff:0:0/96", "RFC 4291"),  # embeds 0.0.0.0
    ("64:ff9b::7f00:1", "64:ff9b::/96", "RFC 6052"),  # embeds 127.0.0.1
    ("64:ff9b:1::808:808", "64:ff9b:1::/48", "RFC 8215"),
    ("100::1", "100::/64", "RFC 6666"),
    ("100:0:0:1::1", "100:0:0:1::/64", "RFC 9780"),
    ("2001:1ff::1", "2001::/23", "RFC 2928"),
    ("2001:0:4136:e378::1", "2001::/32", "RFC 4380"),
    ("2001:1::1", "2001:1::1/128", "RFC 7723"),
    ("2001:1::2", "2001:1::2/128", "RFC 8155"),
    ("2001:1::3", "2001:1::3/128", "RFC 9665"),
    ("2001:2::1", "2001:2::/48", "RFC 5180"),
    ("2001:3::1", "2001:3::/32", "RFC 7450"),
    ("2001:4:112::1", "2001:4:112::/48", "RFC 7535"),
    ("2001:10::1", "2001:10::/28", "RFC 4843"),
    ("2001:20::1", "2001:20::/28", "RFC 7343"),
    ("2001:30::1", "2001:30::/28", "RFC 9374"),
    ("2001:db8::1", "2001:db8::/32", "RFC 3849"),
    ("2002:808:808::1", "2002::/16", "RFC 3056"),  # 6to4 of a public address: refused too
    ("2620:4f:8000::1", "2620:4f:8000::/48", "RFC 7534"),
    ("3fff:fff::1", "3fff::/20", "RFC 9637"),
    ("5f00::1", "5f00::/16", "RFC 9602"),
    ("fd00::1", "fc00::/7", "RFC 4193"),
    ("fe80::1", "fe80::/10", "RFC 4291"),
    ("fec0::1", "fec0::/10", "RFC 3879"),
    ("ff02::1", "ff00::/8", "RFC 4291"),
]


def test_every_row_of_the_table_has_a_case_here() -> None:
    assert sorted(str(row.network) for row in SPECIAL_PURPOSE) == sorted(net for _, net, _ in ROWS)


@pytest.mark.parametrize(("text", "network", "rfc"), ROWS)
def test_each_special_purpose_range_is_refused(text: str, network: str, rfc: str) -> None:
    address = ipaddress.ip_address(text)
    reason = special_purpose_reason(address)
    (row,) = [row for row in SPECIAL_PURPOSE if str(row.network) == network]
    if network in ("::ffff:0:0/96", "64:ff9b::/96"):  # the embedded address decides
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        assert reason is not None and reason.startswith(f"{address} embeds {embedded}, in ")
        return
    assert reason == f"{address} is in {network} ({row.name}, {row.rfc})"
    assert row.rfc.startswith(rfc)
    # the first and last address of the block too
    first, last = row.network[0], row.network[-1]
    assert special_purpose_reason(first) is not None
    assert special_purpose_reason(last) is not None


@pytest.mark.parametrize(
    "text",
    [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",  # just below and above 100.64.0.0/10
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.88.98.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2001:200::1",  # just above 2001::/23
        "2001:db9::1",
        "2003::1",
        "2620:4f:8001::1",
        "3ffe::1",
        "3fff:1000::1",  # just above 3fff::/20
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of a public address (an IPv6-only network's way out)
    ],
)
def test_public_addresses_pass(text: str) -> None:
    assert special_purpose_reason(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("::ffff:10.1.2.3", "embeds 10.1.2.3, in 10.0.0.0/8 (private use, RFC 1918)"),
        (
            "::ffff:100.100.100.200",
            "embeds 100.100.100.200, in 100.64.0.0/10 "
            "(shared address space, carrier-grade NAT, RFC 6598)",
        ),
        (
            "64:ff9b::a9fe:a9fe",
            "embeds 169.254.169.254, in 169.254.0.0/16 (link local, RFC 3927)",
        ),
        ("4000::1", "is outside 2000::/3 (not global unicast, RFC 4291)"),
        ("::1.2.3.4", "is outside 2000::/3 (not global unicast, RFC 4291)"),  # IPv4-compatible
        ("fe80::1%eth0", "is in fe80::/10 (link-local unicast, RFC 4291)"),
    ],
)
def test_ipv6_forms(text: str, reason: str) -> None:
    address = ipaddress.ip_address(text)
    assert special_purpose_reason(address) == f"{address} {reason}"


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "localhost is this host (RFC 6761)"),
        ("Hooks.LOCALHOST.", "hooks.localhost is this host (RFC 6761)"),
        ("[::1]", "::1 is in ::1/128 (loopback, RFC 4291)"),
        (
            "100.64.0.1",
            "100.64.0.1 is in 100.64.0.0/10 (shared address space, carrier-grade NAT, RFC 6598)",
        ),
        ("127.1", "127.0.0.1 is in 127.0.0.0/8 (loopback, RFC 1122)"),  # as getaddrinfo reads it
        ("2130706433", "127.0.0.1 is in 127.0.0.0/8 (loopback, RFC 1122)"),
        ("0xa9.254.169.254", "169.254.169.254 is in 169.254.0.0/16 (link local, RFC 3927)"),
        ("hooks.example.com", None),
        ("cafe.example", None),
        ("8.8.8.8", None),
    ],
)
def test_a_url_host(host: str, reason: str | None) -> None:
    assert private_address_reason(host) == reason


# all of IPv4 (special-purpose ranges are about a seventh of it), and IPv6 regions dense in them
ADDRESSES = st.one_of(
    st.ip_addresses(v=4),
    *(st.ip_addresses(network=n) for n in ("2000::/3", "2001::/16", "::/64", "64:ff9b::/32")),
    st.ip_addresses(network="fc00::/6"),
)


@settings(max_examples=3000)
@given(ADDRESSES)
def test_at_least_as_strict_as_pythons_is_global(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if not address.is_global or address.is_multicast:
        assert special_purpose_reason(address) is not None
