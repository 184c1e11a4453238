"""Where one delivery attempt connects: the host resolved once, every address checked, and the
request sent to exactly the checked addresses.

Checking a name on one DNS answer while the HTTP client connects on another (it resolves the
name again) leaves a window in which a name that passed can be re-pointed at an internal
address (DNS rebinding). So each attempt resolves the host itself, once, and the request goes
to the resolved address as a literal, carrying the URL's host in the ``Host`` header and as
the TLS server name (httpx's ``sni_hostname`` request extension), so that virtual hosting
works and the certificate is verified against the host name, never against the address.

An answer with any special-purpose address (``addresses``) is refused as a whole, not
filtered: a name whose answer mixes public and internal addresses is not one to trust with
the others. With ``allow_private: true`` nothing is refused, but the request still goes to
the address resolved for the attempt.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from monitor.webhooks.addresses import private_address_reason, special_purpose_reason

Resolve = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses``, in the order to try them."""


def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from ``getaddrinfo``, in the order the system prefers (RFC 6724).

    Blocking: the sender runs in a worker thread, never on an event loop.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Destination:
    """The requests of one attempt: one URL per checked address, tried in order until one
    connects, all saying they are for ``host``."""

    urls: tuple[httpx.URL, ...]
    host: str  # the Host header: the URL's host, and its port unless the scheme's default
    sni_hostname: str | None  # None when the URL's host is itself an address

    @property
    def extensions(self) -> dict[str, str]:
        return {} if self.sni_hostname is None else {"sni_hostname": self.sni_hostname}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the attempt sends nothing; ``retry`` when trying again later may succeed (the
    name did not resolve), not when the destination was refused."""

    reason: str
    retry: bool = False


def destination(url: str, *, allow_private: bool, resolve: Resolve) -> Destination | Refusal:
    """Resolve ``url``'s host once and check every address (unless ``allow_private``)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return Refusal(f"invalid URL: {exc}")
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as DNS and SNI want it
    name = host.strip("[]")
    literal = _address(name)
    if literal is not None:
        addresses = [name]
    else:
        reason = None if allow_private else private_address_reason(name)
        if reason is not None:
            return Refusal(f"refused: {reason} (allow_private is not set)")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = list(dict.fromkeys(resolve(name, port)))
        except (OSError, UnicodeError) as exc:
            return Refusal(f"cannot resolve {name}: {exc}", retry=True)
        if not addresses:
            return Refusal(f"cannot resolve {name}: no addresses", retry=True)
    if not allow_private:
        for address in addresses:
            reason = special_purpose_reason(ipaddress.ip_address(address))
            if reason is not None:
                if literal is None:
                    reason = f"{name}: {reason}"
                return Refusal(f"refused: {reason} (allow_private is not set)")
    return Destination(
        urls=tuple(parsed.copy_with(host=address) for address in addresses),
        host=parsed.netloc.decode("ascii"),
        sni_hostname=None if literal is not None else name,
    )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
