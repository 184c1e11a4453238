"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A delivery carries ``webhook-id`` (the event id, the same on every retry), ``webhook-timestamp``
(integer Unix seconds of this attempt) and ``webhook-signature``: ``v1,`` and the base64
HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the route's secret. A secret in the ``whsec_``
form is the base64 of the key; any other string is the key itself, as UTF-8.

>>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
>>> signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}', secret)
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_PREFIX = "whsec_"


def key_of(secret: str) -> bytes:
    """The HMAC key a configured secret stands for."""
    if secret.startswith(_PREFIX):
        try:
            return base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except ValueError:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode()


def signature(event_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(event_id: str, timestamp: int, body: bytes, secret: str | None) -> dict[str, str]:
    """The Standard Webhooks headers of an attempt (without a signature when no secret is
    configured)."""
    found = {"webhook-id": event_id, "webhook-timestamp": str(timestamp)}
    if secret:
        found["webhook-signature"] = signature(event_id, timestamp, body, secret)
    return found
