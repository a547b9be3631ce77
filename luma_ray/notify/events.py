"""The webhook event: one state change of one job, and the exact bytes POSTed for it.

Built by whoever observes job transitions (the scheduler's actor), queued by the sender, kept
by the outbox. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

EVENT_ID_HEADER = "webhook-id"
"""Carries :attr:`WebhookEvent.event_id` (Standard Webhooks' id header); receivers deduplicate
on it (at-least-once delivery)."""


@dataclass(frozen=True)
class WebhookEvent:
    """One state change of one job, to be POSTed to ``url``; built by whoever sees the change."""

    event_id: str  # unique per event; the same on every retry, for receiver deduplication
    url: str  # the request's callback_url
    job_id: str  # events with the same job_id are delivered in enqueue order
    state: str  # queued, running, succeeded, failed or cancelled -> type "generation.<state>"
    payload: Mapping[str, object]  # JSON-serialisable; sent as "data"
    created_at_s: float  # unix seconds when the state changed; sent as "created_at"
    tenant: str | None = None  # signs with tenant_secret(master, tenant) (signing.py)
    shape: str = "event"
    """``event``: the body wraps ``payload`` as ``data`` with the event's id and type;
    ``object``: the body is ``payload`` itself (Dream Machine callbacks post the Generation)."""


def event_body(event: WebhookEvent) -> bytes:
    """The exact bytes POSTed (and signed): sorted keys, compact separators, ASCII."""
    if event.shape == "object":
        return _canonical(event.payload)
    state = event.state.value if isinstance(event.state, Enum) else event.state
    document = {
        "id": event.event_id,
        "type": f"generation.{state}",
        "created_at": event.created_at_s,
        "data": event.payload,
    }
    return _canonical(document)


def _canonical(document: Mapping[str, object]) -> bytes:
    """Sorted keys, compact separators, ASCII: the same bytes in every process."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
