"""The scheduler's view of a tier: a small frozen value, fast to read in the hot path."""

from __future__ import annotations

from dataclasses import dataclass

from luma_ray.config import TierConfig


@dataclass(frozen=True)
class TierSpec:
    """A tier as policies see it. ``order`` is 0 for the highest tier (used by ``strict``)."""

    name: str
    max_wait_s: float
    weight: float
    order: int
    shed_ratio: float | None = None


def tier_specs(tiers: list[TierConfig]) -> dict[str, TierSpec]:
    """Tier specs by name, ``order`` following the config's list order."""
    return {
        t.name: TierSpec(t.name, t.max_wait_s, t.weight, i, t.shed_ratio)
        for i, t in enumerate(tiers)
    }
