"""Webhook signatures: the ``X-Luma-Signature`` header (HMAC-SHA256 over the timestamp and the
body) and the per-tenant secrets that sign it. No I/O; the sender signs with :func:`sign`,
receivers and tests check with :func:`verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Luma-Signature"

_MAX_SIGNATURE_HEADER_CHARS = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def tenant_secret(master: bytes, tenant: str) -> bytes:
    """The secret that signs ``tenant``'s webhooks, derived from the deployment's master
    secret: each tenant verifies its own events with it and cannot sign another tenant's.
    ``luma-ray keys webhook-secret --tenant NAME`` prints it for the operator to hand over."""
    digest = hmac.new(master, b"luma-webhook-tenant:" + tenant.encode(), hashlib.sha256)
    return b"whsec_" + digest.hexdigest().encode()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Luma-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, now_s: float, tolerance_s: float = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its time is within ``tolerance_s``.

    For receivers and tests. Malformed headers and timestamps too far from ``now_s`` (either
    way, which stops replays) give False, never an exception. Unknown keys are ignored and
    several ``v1=`` entries may appear (any one may match), leaving room for secret rotation.
    """
    if len(header) > _MAX_SIGNATURE_HEADER_CHARS:
        return False
    timestamps: list[str] = []
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            digests.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]) or not digests:
        return False
    timestamp = int(timestamps[0])
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2].encode()
    matched = False
    for digest in digests:  # no early exit: the time taken does not depend on which one matched
        if _HEX_DIGEST.fullmatch(digest):
            matched |= hmac.compare_digest(digest.encode(), expected)
    return matched
