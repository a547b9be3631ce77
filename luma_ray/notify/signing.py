"""Webhook signatures: Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``), signed with per-tenant secrets. No I/O.

The sender signs every POST with :func:`sign_headers`; a receiver verifies with the
``standardwebhooks`` package (``Webhook(secret).verify(body, headers)``), with the ``openai``
SDK (``client.webhooks.unwrap(body, headers, secret=secret)``), or with :func:`verify` here
(the same check with the clock as an argument). The signature is
``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where ``key`` is the secret's
base64 part after ``whsec_``; the signing itself is the ``standardwebhooks`` package's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone

from standardwebhooks import Webhook

ID_HEADER = "webhook-id"
"""The event id, the same on every retry: receivers deduplicate on it."""
TIMESTAMP_HEADER = "webhook-timestamp"
"""Unix seconds of this attempt; receivers refuse values more than 5 minutes from their clock."""
SIGNATURE_HEADER = "webhook-signature"
"""Space-separated ``v1,<base64>`` signatures (more than one while a secret is rotated)."""

_MAX_SIGNATURE_HEADER_CHARS = 1024
_MAX_ID_CHARS = 256


def tenant_secret(master: bytes, tenant: str) -> str:
    """The secret (``whsec_`` + base64 of 32 bytes) that signs ``tenant``'s webhooks, derived
    from the deployment's master secret: each tenant verifies its own events with it and
    cannot sign another tenant's. ``luma-ray keys webhook-secret --tenant NAME`` prints it."""
    return _whsec(hmac.new(master, b"luma-webhook-tenant:" + tenant.encode(), hashlib.sha256))


def deployment_secret(master: bytes) -> str:
    """The secret for events that belong to no tenant (none does today; old outbox rows)."""
    return _whsec(hmac.new(master, b"luma-webhook-deployment", hashlib.sha256))


def signing_secret(master: bytes, tenant: str | None) -> str:
    """The secret that signs an event of ``tenant`` (``None``: :func:`deployment_secret`)."""
    return deployment_secret(master) if tenant is None else tenant_secret(master, tenant)


def sign_headers(secret: str, event_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``timestamp`` (unix seconds)."""
    when = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    signature = Webhook(secret).sign(event_id, when, body.decode("utf-8"))
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature,
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now_s: float,
    tolerance_s: float = 300,
) -> bool:
    """True when ``headers`` sign ``body`` with ``secret`` at a time within ``tolerance_s`` of
    ``now_s``; what the ``standardwebhooks`` package checks, with the clock as an argument.

    Header names are matched case-insensitively. Missing or malformed headers, and timestamps
    too far from ``now_s`` either way (which stops replays), give False, never an exception.
    Any one of several ``v1,`` signatures may match (secret rotation).
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    event_id = lower.get(ID_HEADER, "")
    stamp = lower.get(TIMESTAMP_HEADER, "")
    signatures = lower.get(SIGNATURE_HEADER, "")
    if (
        not event_id
        or len(event_id) > _MAX_ID_CHARS
        or len(signatures) > _MAX_SIGNATURE_HEADER_CHARS
    ):
        return False
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    if abs(now_s - int(stamp)) > tolerance_s:
        return False
    try:
        expected = sign_headers(secret, event_id, body, int(stamp))[SIGNATURE_HEADER].encode()
    except (ValueError, UnicodeDecodeError):  # a secret that is not base64, a body not UTF-8
        return False
    matched = False
    for candidate in signatures.split():  # no early exit: timing does not say which matched
        matched |= hmac.compare_digest(candidate.encode("ascii", "replace"), expected)
    return matched


def _whsec(digest: hmac.HMAC) -> str:
    return "whsec_" + base64.b64encode(digest.digest()).decode("ascii")
