"""Which webhook hosts are private: loopback, link-local, private networks and the like.

A monitor's alert must not become a way to reach internal services (SSRF), so such
destinations are refused unless the route says ``allow_private: true``. Checked on the URL's
host at config load (an address literal or ``localhost``) and on every address a host name
resolves to at delivery.

>>> private_address_reason("10.1.2.3")
'10.1.2.3 is a private address'
>>> private_address_reason("localhost"), private_address_reason("hooks.example.com")
('localhost is this host', None)
>>> private_address_reason("[::1]")
'::1 is a loopback address'
"""

from __future__ import annotations

import ipaddress


def private_address_reason(host: str) -> str | None:
    """Why ``host`` (a name or an address literal) is not a public destination, or None."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{name} is this host"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None  # a name: its addresses are checked when it is resolved
    return address_reason(address)


def address_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_reason(address.ipv4_mapped)
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return f"{address} is a {kind} address"
    return None
