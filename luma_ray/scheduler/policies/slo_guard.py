"""``slo_guard``: strict tier order, with a reserved share for jobs about to miss their SLO."""

from __future__ import annotations

from luma_ray.errors import ConfigError
from luma_ray.scheduler.policies.policy import Policy, check_param
from luma_ray.scheduler.tiers import TierSpec


class SloGuard(Policy):
    """Serve jobs that can still make their SLO first; guard the ones far past it.

    Each tier's waits fall in three bands:

    - *savable* (wait < SLO): still within the SLO. Ranked by ``tier_bias * weight + ratio``
      (ratio = wait / SLO): with ``tier_bias`` 0 the job nearest its deadline goes first; a
      bias above 1 serves heavier tiers first.
    - *late* (SLO <= wait < guard): already missed; served only when nothing else waits,
      highest ratio first.
    - *overdue* (wait >= guard, where guard = ``r_cap`` x SLO, but no more than
      ``guard_wait_s`` seconds and no less than the SLO): the guard. Overdue jobs, highest
      ratio first, go before savable ones on a reserved share ``guard_share`` of dispatches
      (a credit that grows by ``guard_share`` per dispatch and is spent by each overdue
      dispatch), and otherwise just above late jobs.

    Under overload, ``pct_slo`` keeps every tier at the same ratio, so all tiers miss
    together; this policy keeps attaining the SLO for as many jobs as capacity allows, while
    the guard bounds how far the rest fall behind: ``r_cap`` in SLO units for short-SLO tiers
    and ``guard_wait_s`` in hours for long-SLO tiers such as free, so nobody starves.
    ``guard_share`` = 1 with ``r_cap`` = 1 and ``tier_bias`` = 0 is exactly ``pct_slo``.
    """

    name = "slo_guard"
    param_defaults = {
        "r_cap": 10.0,
        "guard_share": 1.0,
        "tier_bias": 10.0,
        "guard_wait_s": 8 * 3600.0,
    }

    _SAVABLE, _LATE, _OVERDUE_LOW, _OVERDUE_HIGH = 2e6, 0.0, 1e6, 4e6

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        self.r_cap = self.params["r_cap"]
        self.guard_share = self.params["guard_share"]
        self.tier_bias = self.params["tier_bias"]
        self.guard_wait_s = self.params["guard_wait_s"]
        if not 1.0 <= self.r_cap < 1e5:
            raise ConfigError(f"policy slo_guard: r_cap must be in [1, 1e5), got {self.r_cap}")
        check_param(self.name, "guard_share", self.guard_share, 0.0, 1.0)
        check_param(self.name, "tier_bias", self.tier_bias, 0.0, 1e3)
        if not self.guard_wait_s > 0:
            raise ConfigError(
                f"policy slo_guard: guard_wait_s must be > 0 seconds, got {self.guard_wait_s}"
            )
        self.credit = 1.0 if self.guard_share > 0 else 0.0
        """Overdue jobs outrank savable ones while this is at least 1."""
        self._bands: dict[str, tuple[float, ...]] = {}

    def bands(self, tier: TierSpec) -> tuple[float, ...]:
        cached = self._bands.get(tier.name)
        if cached is None:
            slo = tier.max_wait_s
            guard = max(slo, min(self.r_cap * slo, self.guard_wait_s))
            cached = (slo,) if guard == slo else (slo, guard)
            self._bands[tier.name] = cached
        return cached

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        ratio = wait_s / tier.max_wait_s
        if band == 0:
            return self._SAVABLE + self.tier_bias * tier.weight + ratio
        if band < len(self.bands(tier)):
            return self._LATE + ratio
        base = self._OVERDUE_HIGH if self.credit >= 1.0 else self._OVERDUE_LOW
        return base + ratio

    def on_dispatch(self, tier: TierSpec, band: int, wait_s: float, now_s: float) -> None:
        overdue = band > 0 and band == len(self.bands(tier))
        if overdue and self.credit >= 1.0:
            self.credit -= 1.0
        self.credit = min(1.0, self.credit + self.guard_share)
