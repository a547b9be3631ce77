"""``slo_ratchet``: serve the savable first, hold the tail near the worst ratio forced."""

from __future__ import annotations

from luma_ray.errors import ConfigError
from luma_ray.scheduler.policies.policy import Policy, check_param
from luma_ray.scheduler.tiers import TierSpec


class SloRatchet(Policy):
    """Serve the savable first; hold the tail near the worst wait/SLO already forced.

    Bands per tier, in SLO units (ratio = wait / SLO, the same scale for every tier; ``worst``
    is the highest ratio dispatched, halved every ``memory_s`` seconds):

    - *savable* (ratio < 1): ranked ``tier_bias * weight + ratio``: heavier tiers first, and
      inside a tier the job nearest its deadline.
    - *late* (1 <= ratio < guard, guard = ``max(floor, ratchet * worst)``): already missed;
      served when nothing savable or guarded waits, highest ratio first.
    - *guarded* (guard <= ratio < worst): nearing the worst case; goes before the savable jobs
      of tiers lighter than ``guard_weight`` (with weight 1.5: free), and before every savable
      job on a share ``guard_share`` of dispatches.
    - *record* (ratio >= worst): would set a new worst case; as guarded, on the larger share
      ``worst_share``.

    Shares are credits: each dispatch adds the share (capped at ``1 + share``), a dispatch
    ahead of a heavier tier's savable jobs spends 1 of ``worst_share``'s credit and, for a
    guarded job, 1 of ``guard_share``'s too. So at most ``worst_share`` of dispatches (plus
    one) go to jobs that already missed while savable jobs of heavier tiers wait. The guard
    follows the day: at the SLO while capacity keeps up, and only as high as the overload has
    already forced the tail when it does not. ``guard_share`` is the operator's knob between
    attainment (lower) and the tail (higher); docs/scheduling.md has the measured frontier.
    """

    name = "slo_ratchet"
    param_defaults = {
        "guard_share": 0.2,
        "worst_share": 0.8,
        "ratchet": 0.85,
        "guard_weight": 1.5,
        "tier_bias": 10.0,
        "floor": 1.0,
        "memory_s": 6 * 3600.0,
    }

    _SAVABLE, _LATE, _GUARD_LOW, _GUARD_HIGH = 2e6, 0.0, 1e6, 4e6

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        p = self.params
        self.tier_bias, self.ratchet, self.guard_share = (
            p["tier_bias"],
            p["ratchet"],
            p["guard_share"],
        )
        self.floor, self.memory_s = p["floor"], p["memory_s"]
        self.guard_weight = p["guard_weight"]
        self.worst_share = p["worst_share"]
        self.worst_credit = 1.0 if self.worst_share > 0 else 0.0
        check_param(self.name, "guard_weight", self.guard_weight, 0.0, 1e3)
        check_param(self.name, "tier_bias", self.tier_bias, 0.0, 1e3)
        check_param(self.name, "guard_share", self.guard_share, 0.0, 1.0)
        check_param(self.name, "worst_share", self.worst_share, self.guard_share, 1.0)
        check_param(self.name, "ratchet", self.ratchet, 0.0, 1.0)
        check_param(self.name, "floor", self.floor, 1.0, 1e5)
        if not self.memory_s > 0:
            raise ConfigError(f"policy {self.name}: memory_s must be > 0, got {self.memory_s}")
        self.credit = 1.0 if self.guard_share > 0 else 0.0
        self.worst = 0.0
        """The highest ratio dispatched, decayed by ``memory_s``."""
        self._worst_at_s: float | None = None
        self._layout_of = -1.0  # the worst the layout below was made for (none yet)
        self._layout_now: tuple[tuple[float, ...], tuple[str, ...]] = ((), ())
        self._bands_now: dict[str, tuple[float, ...]] = {}

    @property
    def guard(self) -> float:
        """The guard in SLO units."""
        return max(self.floor, self.ratchet * self.worst)

    def _layout(self) -> tuple[tuple[float, ...], tuple[str, ...]]:
        """Band cuts in SLO units and each band's kind (one more kind than cuts); kept until
        ``worst`` changes (the guard follows from it), as picks read it for every queue."""
        worst = self.worst
        if worst == self._layout_of:
            return self._layout_now
        guard = self.guard
        cuts, kinds = [1.0], ["savable"]
        if guard > 1.0:
            cuts.append(guard)
            kinds.append("late")
        if self.worst_share > 0 and worst > guard:
            cuts.append(worst)
            kinds += ["guarded", "record"]
        else:
            kinds.append("record" if self.worst_share > 0 else "guarded")
        self._layout_of, self._layout_now = worst, (tuple(cuts), tuple(kinds))
        self._bands_now = {}
        return self._layout_now

    def bands(self, tier: TierSpec) -> tuple[float, ...]:
        cuts = self._layout()[0]
        found = self._bands_now.get(tier.name)
        if found is None:
            found = self._bands_now[tier.name] = tuple(c * tier.max_wait_s for c in cuts)
        return found

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        ratio = wait_s / tier.max_wait_s
        kind = self._layout()[1][band]
        if kind == "savable":
            return self._SAVABLE + self.tier_bias * tier.weight + ratio
        if kind == "late":
            return self._LATE + ratio
        if self.worst_credit >= 1.0 and (kind == "record" or self.credit >= 1.0):
            return self._GUARD_HIGH + ratio
        if self.guard_weight > 0:  # between the savable jobs of lighter and heavier tiers
            return self._SAVABLE + self.tier_bias * self.guard_weight + ratio / (1.0 + ratio)
        return self._GUARD_LOW + ratio

    def on_dispatch(self, tier: TierSpec, band: int, wait_s: float, now_s: float) -> None:
        kind = self._layout()[1][band]
        if self.worst_credit >= 1.0 and (
            kind == "record" or (kind == "guarded" and self.credit >= 1.0)
        ):
            self.worst_credit -= 1.0
            if kind == "guarded":
                self.credit -= 1.0
        # Capped at 1 + share (not 1), so a share above one half is honoured.
        self.credit = min(1.0 + self.guard_share, self.credit + self.guard_share)
        self.worst_credit = min(1.0 + self.worst_share, self.worst_credit + self.worst_share)
        ratio = wait_s / tier.max_wait_s
        if self._worst_at_s is not None and now_s > self._worst_at_s:
            self.worst *= 0.5 ** ((now_s - self._worst_at_s) / self.memory_s)
        self._worst_at_s = now_s
        self.worst = max(self.worst, ratio)
