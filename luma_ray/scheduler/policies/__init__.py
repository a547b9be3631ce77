"""Dispatch policies: pure rank functions of (tier, wait).

A policy splits each tier's waits into *bands* at thresholds (seconds, read at every pick: a
policy may move them between dispatches) and ranks a job by ``rank(tier, band, wait_s)``;
higher goes first. The contract the head-only pick relies on: inside one band the rank does
not decrease as the wait grows, and among the bands above the first (band 0, the youngest) a
higher band never ranks below a lower one. Then the best job of a band is its oldest, and with
fair share a queue offers two candidates (band 0 by tenant, the oldest job for the rest), so a
pick compares O(queues x bands) candidates however deep the queues are
(:mod:`luma_ray.scheduler.queues`). Ties go to the older job, then to the lower sequence
number. Policies never read a clock; the wait and the time are arguments. A policy may keep
state that changes only through :meth:`Policy.on_dispatch` (the reserved shares of
``slo_guard`` and ``slo_ratchet``, and the worst ratio ``slo_ratchet`` has served).

The policies live one family to a module: the base class (:mod:`.policy`), the stateless
baselines (:mod:`.baselines`), ``slo_guard``, ``slo_ratchet`` and ``slo_shadow``. This module
holds the registry by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from luma_ray.errors import ConfigError
from luma_ray.scheduler.policies.baselines import Edf, Fifo, PctSlo, Strict
from luma_ray.scheduler.policies.policy import Policy
from luma_ray.scheduler.policies.slo_guard import SloGuard
from luma_ray.scheduler.policies.slo_ratchet import SloRatchet
from luma_ray.scheduler.policies.slo_shadow import SloShadow

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "Edf",
    "Fifo",
    "PctSlo",
    "Policy",
    "SloGuard",
    "SloRatchet",
    "SloShadow",
    "Strict",
    "make_policy",
]

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Fifo, Strict, PctSlo, Edf, SloGuard, SloRatchet, SloShadow)
}

DEFAULT_POLICY = "slo_shadow"


def make_policy(name: str, params: Mapping[str, float] | None = None) -> Policy:
    """Build a fresh policy by name; unknown names and parameters raise ``ConfigError``."""
    cls = POLICIES.get(name)
    if cls is None:
        raise ConfigError(f"unknown policy {name!r}; use one of {', '.join(sorted(POLICIES))}")
    return cls(**dict(params or {}))
