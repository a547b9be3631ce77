"""The baselines: stateless one-band ranks (oldest first, strict tier order, share of SLO
used, earliest deadline)."""

from __future__ import annotations

from luma_ray.scheduler.policies.policy import Policy
from luma_ray.scheduler.tiers import TierSpec


class Fifo(Policy):
    """Oldest job first, whatever its tier."""

    name = "fifo"

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        return wait_s


class Strict(Policy):
    """Tier order first (api before enterprise before …), FIFO inside a tier."""

    name = "strict"

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        # Waits stay far below 1e12 s, so the tier term always dominates.
        return -tier.order * 1e12 + wait_s


class PctSlo(Policy):
    """Rank by the share of the tier's SLO already used (wait / max wait)."""

    name = "pct_slo"

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        return wait_s / tier.max_wait_s


class Edf(Policy):
    """Earliest deadline (enqueue time + SLO) first."""

    name = "edf"

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        return wait_s - tier.max_wait_s
