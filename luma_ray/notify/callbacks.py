"""Webhook rules without I/O: callback URL checks (the SSRF guard), HMAC signatures, the
event body, and the backoff schedule. The sender in ``webhooks`` and receivers' tests use them.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import httpx

from luma_ray.errors import InvalidRequest

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Luma-Signature"
EVENT_ID_HEADER = "X-Luma-Event-Id"
USER_AGENT = "luma-ray-webhooks/1"
MAX_URL_CHARS = 2048

_MAX_SIGNATURE_HEADER_CHARS = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
# Hosts that inet_aton reads as IPv4 although ipaddress does not: "127.1", "0x7f.1", "2130706433".
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses``: how the sender looks a host up at send time."""


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


def compute_backoff(
    attempt: int,
    base_s: float = 0.5,
    cap_s: float = 60.0,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one.

    ``base_s`` after the first, doubling each time, at most ``cap_s``; then moved by a uniform
    random fraction in ``[-jitter, +jitter]`` (so it may pass ``cap_s`` by that fraction).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a fraction in [0, 1], got {jitter}")
    delay_s = min(cap_s, base_s * 2.0 ** min(attempt - 1, 64))
    if jitter:
        delay_s *= 1.0 + (rng or random.Random()).uniform(-jitter, jitter)
    return delay_s


def validate_callback_url(url: str, *, allow_private: bool = False) -> str:
    """Return ``url`` if it may receive webhooks; raise ``InvalidRequest`` saying what to fix.

    Only ``http``/``https`` with a host, no ``user:password@``, at most ``MAX_URL_CHARS``.
    Unless ``allow_private``, refuses ``localhost`` and literal loopback, private, link-local and
    reserved addresses (the SSRF guard). Hostnames are not resolved here: the sender resolves
    them before each attempt and refuses private answers then.
    """
    if len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"callback_url has {len(url)} characters; at most {MAX_URL_CHARS}")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidRequest("callback_url must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRequest("callback_url must start with http:// or https://")
    if "@" in parts.netloc:
        raise InvalidRequest("callback_url must not contain user:password@; use a path token")
    if not parts.hostname:
        raise InvalidRequest("callback_url needs a host, as in https://example.com/hook")
    try:
        _ = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise InvalidRequest("callback_url is not a valid URL (check the host and port)") from None
    if not allow_private:
        host = parts.hostname.rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidRequest("callback_url must not point at localhost; use a public host")
        address = _literal_ip(host)
        if address is not None and not _is_public(address):
            raise InvalidRequest(
                "callback_url points at a private, loopback, link-local or reserved address; "
                "use a public host"
            )
    return url


@dataclass(frozen=True)
class WebhookEvent:
    """One state change of one job, to be POSTed to ``url``; built by whoever sees the change."""

    event_id: str  # unique per event; the same on every retry, for receiver deduplication
    url: str  # the request's callback_url
    job_id: str  # events with the same job_id are delivered in enqueue order
    state: str  # queued, running, succeeded, failed or cancelled -> type "generation.<state>"
    payload: dict[str, Any]  # JSON-serialisable; sent as "data"
    created_at_s: float  # unix seconds when the state changed; sent as "created_at"
    tenant: str | None = None  # signs with tenant_secret(master, tenant); None: the master


def event_body(event: WebhookEvent) -> bytes:
    """The exact bytes POSTed (and signed): sorted keys, compact separators, ASCII."""
    state = event.state.value if isinstance(event.state, Enum) else event.state
    document = {
        "id": event.event_id,
        "type": f"generation.{state}",
        "created_at": event.created_at_s,
        "data": event.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def resolve_host(host: str, port: int) -> list[str]:
    """The default :data:`Resolver`: every address the system resolver returns for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_public(address: IPAddress) -> bool:
    """False for anything but a global unicast address, looking inside IPv6 wrappings of IPv4."""
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.append(address.teredo[1])
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(_is_public(inner) for inner in embedded if inner is not None)
    return True


def _redact(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what logs may show of a callback URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{port}" if port else "")


def _retry_after_s(value: str | None, now_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now_s)
