"""Which webhook destinations are not public: the IANA special-purpose address registries.

A monitor's alert must not become a way to reach internal services (SSRF), so a destination
in any special-purpose range is refused unless the route says ``allow_private: true``. The
check is on the URL's host at config load (an address literal or ``localhost``) and on every
address a host name resolves to at delivery (see ``destinations``).

The ranges are written out below, one row per entry of the IANA IPv4 and IPv6
Special-Purpose Address Registries (RFC 6890), plus multicast, IPv6 site-local and, for
IPv6, everything outside ``2000::/3``, the only space allocated for global unicast.
Python's ``ipaddress.is_global`` is close, but not the same list, and it differs between
Python versions. Every row is refused, including the few the registry marks globally
reachable (anycast services such as AS112, AMT, PCP and TURN) and the documentation and
benchmarking ranges: no webhook receiver is legitimately there.

Two IPv6 forms carry an IPv4 address that is where the packets end up, and that address
decides: IPv4-mapped ``::ffff:0:0/96`` and the NAT64 well-known prefix ``64:ff9b::/96``
(RFC 6052, the IPv4 address in the last 32 bits), so that a host on an IPv6-only network
behind NAT64 can still reach public receivers. The local-use NAT64 prefix
``64:ff9b:1::/48`` (RFC 8215) puts the IPv4 address where its operator chose, so it is
refused, as are the tunnelling prefixes 6to4 (``2002::/16``) and Teredo (``2001::/32``).

>>> private_address_reason("10.1.2.3")
'10.1.2.3 is in 10.0.0.0/8 (private use, RFC 1918)'
>>> private_address_reason("localhost"), private_address_reason("hooks.example.com")
('localhost is this host (RFC 6761)', None)
>>> private_address_reason("[::1]")
'::1 is in ::1/128 (loopback, RFC 4291)'
>>> special_purpose_reason(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
'64:ff9b::a9fe:a9fe embeds 169.254.169.254, in 169.254.0.0/16 (link local, RFC 3927)'
>>> special_purpose_reason(ipaddress.ip_address("64:ff9b::808:808")) is None
True
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SpecialRange:
    network: Network
    name: str
    rfc: str


def _rows(*rows: tuple[str, str, str]) -> tuple[SpecialRange, ...]:
    return tuple(SpecialRange(ipaddress.ip_network(net), name, rfc) for net, name, rfc in rows)


SPECIAL_PURPOSE: tuple[SpecialRange, ...] = _rows(
    # IANA IPv4 Special-Purpose Address Registry
    ("0.0.0.0/8", '"this network"', "RFC 791"),
    ("0.0.0.0/32", '"this host on this network"', "RFC 1122"),
    ("10.0.0.0/8", "private use", "RFC 1918"),
    ("100.64.0.0/10", "shared address space, carrier-grade NAT", "RFC 6598"),
    ("127.0.0.0/8", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link local", "RFC 3927"),
    ("172.16.0.0/12", "private use", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    ("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335"),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    ("192.0.0.9/32", "Port Control Protocol anycast", "RFC 7723"),
    ("192.0.0.10/32", "TURN anycast", "RFC 8155"),
    ("192.0.0.170/32", "NAT64/DNS64 discovery", "RFC 8880"),
    ("192.0.0.171/32", "NAT64/DNS64 discovery", "RFC 8880"),
    ("192.0.2.0/24", "documentation, TEST-NET-1", "RFC 5737"),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    ("192.52.193.0/24", "AMT", "RFC 7450"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    ("192.88.99.2/32", "6a44 relay anycast", "RFC 6751"),
    ("192.168.0.0/16", "private use", "RFC 1918"),
    ("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
    ("198.18.0.0/15", "benchmarking", "RFC 2544"),
    ("198.51.100.0/24", "documentation, TEST-NET-2", "RFC 5737"),
    ("203.0.113.0/24", "documentation, TEST-NET-3", "RFC 5737"),
    ("240.0.0.0/4", "reserved", "RFC 1112"),
    ("255.255.255.255/32", "limited broadcast", "RFC 919, RFC 8190"),
    # not in that registry: the IPv4 multicast space
    ("224.0.0.0/4", "multicast", "RFC 5771"),
    # IANA IPv6 Special-Purpose Address Registry
    ("::1/128", "loopback", "RFC 4291"),
    ("::/128", "unspecified", "RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped", "RFC 4291"),
    ("64:ff9b::/96", "IPv4-IPv6 translation", "RFC 6052"),
    ("64:ff9b:1::/48", "IPv4-IPv6 translation, local use", "RFC 8215"),
    ("100::/64", "discard only", "RFC 6666"),
    ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
    ("2001::/23", "IETF protocol assignments", "RFC 2928"),
    ("2001::/32", "Teredo", "RFC 4380"),
    ("2001:1::1/128", "Port Control Protocol anycast", "RFC 7723"),
    ("2001:1::2/128", "TURN anycast", "RFC 8155"),
    ("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665"),
    ("2001:2::/48", "benchmarking", "RFC 5180"),
    ("2001:3::/32", "AMT", "RFC 7450"),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535"),
    ("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    ("2001:30::/28", "drone remote ID entity tags", "RFC 9374"),
    ("2001:db8::/32", "documentation", "RFC 3849"),
    ("2002::/16", "6to4", "RFC 3056"),
    ("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
    ("3fff::/20", "documentation", "RFC 9637"),
    ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
    ("fc00::/7", "unique local", "RFC 4193"),
    ("fe80::/10", "link-local unicast", "RFC 4291"),
    # not in that registry: deprecated site-local, and multicast
    ("fec0::/10", "deprecated site-local", "RFC 3879"),
    ("ff00::/8", "multicast", "RFC 4291"),
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # RFC 4291 section 2.4; IANA's allocations
_OUTSIDE_GLOBAL_UNICAST = SpecialRange(_GLOBAL_UNICAST, "not global unicast", "RFC 4291")
# where the packets go is the embedded IPv4 address (RFC 4291 section 2.5.5.2; RFC 6052)
_EMBEDDING = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("64:ff9b::/96"))
# legacy IPv4 literals that getaddrinfo (inet_aton) accepts: 127.1, 2130706433, 0x7f.1
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


def special_range(address: Address) -> SpecialRange | None:
    """The most specific special-purpose range holding ``address``, or None.

    Any IPv6 address outside ``2000::/3`` and in no listed range gives a range standing for
    that whole complement (``outside 2000::/3``).
    """
    holding = [
        row
        for row in SPECIAL_PURPOSE
        if address.version == row.network.version and address in row.network
    ]
    if holding:
        return max(holding, key=lambda row: row.network.prefixlen)
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return _OUTSIDE_GLOBAL_UNICAST
    return None


def special_purpose_reason(address: Address) -> str | None:
    """Why ``address`` is not a public destination, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address) and any(
        address in prefix for prefix in _EMBEDDING
    ):
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        inner = special_range(embedded)
        if inner is None:
            return None
        return f"{address} embeds {embedded}, in {_describe(inner)}"
    found = special_range(address)
    if found is None:
        return None
    if found is _OUTSIDE_GLOBAL_UNICAST:
        return f"{address} is outside 2000::/3 ({found.name}, {found.rfc})"
    return f"{address} is in {_describe(found)}"


def private_address_reason(host: str) -> str | None:
    """Why ``host`` (a URL's host: a name or an address literal) is not a public destination,
    or None: a name other than ``localhost`` is checked when it is resolved, not here."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{name} is this host (RFC 6761)"
    try:
        address: Address = ipaddress.ip_address(name)
    except ValueError:
        if not _LEGACY_IPV4.fullmatch(name):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None  # a name: its addresses are checked when it is resolved
    return special_purpose_reason(address)


def _describe(row: SpecialRange) -> str:
    return f"{row.network} ({row.name}, {row.rfc})"
