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
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from luma_ray.errors import ConfigError
from luma_ray.scheduler.shadows import RunningQuantile, ShadowBook
from luma_ray.scheduler.tiers import TierSpec


class Policy:
    """Base class. Subclasses set ``name`` and ``param_defaults`` and override ``rank``."""

    name = "policy"
    param_defaults: Mapping[str, float] = {}

    def __init__(self, **params: float) -> None:
        unknown = sorted(set(params) - set(self.param_defaults))
        if unknown:
            known = ", ".join(sorted(self.param_defaults)) or "none"
            raise ConfigError(
                f"policy {self.name}: unknown parameter(s) {', '.join(unknown)}; known: {known}"
            )
        self.params = {**self.param_defaults, **{k: float(v) for k, v in params.items()}}

    def bands(self, tier: TierSpec) -> tuple[float, ...]:
        """Ascending wait thresholds (s) at which the rank may jump. One band by default."""
        return ()

    def rank(self, tier: TierSpec, band: int, wait_s: float) -> float:
        raise NotImplementedError

    def on_arrival(self, tier: TierSpec, now_s: float) -> None:
        """Called once for each new job the scheduler accepts (not for requeues)."""

    def on_dispatch(self, tier: TierSpec, band: int, wait_s: float, now_s: float) -> None:
        """Called once after each dispatch at ``now_s``; stateful policies update here."""


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
        _check(self.name, "guard_share", self.guard_share, 0.0, 1.0)
        _check(self.name, "tier_bias", self.tier_bias, 0.0, 1e3)
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
        _check(self.name, "guard_weight", self.guard_weight, 0.0, 1e3)
        _check(self.name, "tier_bias", self.tier_bias, 0.0, 1e3)
        _check(self.name, "guard_share", self.guard_share, 0.0, 1.0)
        _check(self.name, "worst_share", self.worst_share, self.guard_share, 1.0)
        _check(self.name, "ratchet", self.ratchet, 0.0, 1.0)
        _check(self.name, "floor", self.floor, 1.0, 1e5)
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


class SloShadow(SloRatchet):
    """``slo_ratchet`` steered between the two yardsticks, replayed in shadow.

    A :class:`~luma_ray.scheduler.shadows.ShadowBook` replays ``pct_slo`` and ``strict`` on
    the same arrivals and dispatches, so the policy knows, as the day goes, the tail
    ``pct_slo`` has been forced to (``ref``: its running p99.9 wait/SLO) and the weighted
    attainment ``strict`` has reached, and projects ``pct_slo``'s tail forward by draining its
    current queue (``ShadowBook.projected``). The ratchet's *worst* (where the record band
    starts) is then capped at ``k * max(ref, projected)`` (``projection`` 0 leaves the
    projection out), and ``k`` is steered after every dispatch: up (more room
    for savable jobs) while the policy's own tail margin (``tail_target`` minus its running
    p99.9 over ``ref``) exceeds its attainment margin (its weighted attainment over strict's,
    minus ``attainment_target``, with deficits diluted over at least ``attainment_scale``
    weight units so that the first few hundred dispatches of a day do not steer it), down
    otherwise, within [``k_min``, ``k_max`` x max(1, ``tail_target`` / 1.1)], by a factor
    ``exp(step)`` per dispatch. So the
    policy holds the tail near ``pct_slo``'s when attainment has room, and gives way when it
    has not. ``tail_target`` is the operator's knob: lower trades attainment for tail.
    """

    name = "slo_shadow"
    param_defaults = {
        **SloRatchet.param_defaults,
        "tail_target": 1.1,
        "attainment_target": 0.9,
        "k_start": 1.0,
        "k_min": 0.5,
        "k_max": 1.5,
        "step": 0.002,
        "quantile": 0.999,
        "attainment_scale": 20000.0,
        "projection": 1.0,
        "rate_window_s": 900.0,
    }

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        p = self.params
        _check(self.name, "tail_target", p["tail_target"], 0.5, 100.0)
        _check(self.name, "attainment_target", p["attainment_target"], 0.0, 1.0)
        _check(self.name, "k_min", p["k_min"], 0.01, p["k_max"])
        _check(self.name, "k_start", p["k_start"], p["k_min"], p["k_max"])
        _check(self.name, "step", p["step"], 0.0, 1.0)
        _check(self.name, "quantile", p["quantile"], 0.5, 0.999999)
        _check(self.name, "attainment_scale", p["attainment_scale"], 0.0, 1e12)
        _check(self.name, "projection", p["projection"], 0.0, 1.0)
        _check(self.name, "rate_window_s", p["rate_window_s"], 1.0, 1e7)
        self.k = p["k_start"]
        self.k_max = p["k_max"] * max(1.0, p["tail_target"] / 1.1)
        """``k``'s ceiling: ``k_max``, raised in proportion for a ``tail_target`` above 1.1."""
        self.shadows = ShadowBook(p["quantile"], p["rate_window_s"])
        self.own_tail = RunningQuantile(p["quantile"])
        self.own_met = self.own_weight = 0.0
        self.self_worst = 0.0
        """The ratchet's own worst (decayed), before the cap."""

    def on_arrival(self, tier: TierSpec, now_s: float) -> None:
        self.shadows.arrive(tier, now_s)

    def on_dispatch(self, tier: TierSpec, band: int, wait_s: float, now_s: float) -> None:
        last = self._worst_at_s
        super().on_dispatch(tier, band, wait_s, now_s)  # credits; the capped worst is redone
        ratio = wait_s / tier.max_wait_s
        if last is not None and now_s > last:
            self.self_worst *= 0.5 ** ((now_s - last) / self.memory_s)
        self.self_worst = max(self.self_worst, ratio)
        self.own_weight += tier.weight
        self.own_met += tier.weight * (wait_s <= tier.max_wait_s)
        self.own_tail.add(ratio)
        shadows = self.shadows
        shadows.dispatch(now_s)
        ref = shadows.pct_tail.value
        if ref > 1.0:
            self.k *= math.exp(self.params["step"] if self._relax(ref) else -self.params["step"])
            self.k = min(self.k_max, max(self.params["k_min"], self.k))
        cap = self.k * max(ref, self.params["projection"] * shadows.projected)
        self.worst = min(self.self_worst, cap) if cap > 0 else self.self_worst

    def _relax(self, ref: float) -> bool:
        """True when the tail has more room than attainment (so let ``k`` grow)."""
        p, s = self.params, self.shadows
        strict = s.strict_met * self.own_weight / s.strict_weight if s.strict_weight else 0.0
        scale = max(self.own_weight, p["attainment_scale"], 1e-9)
        attainment_margin = (self.own_met - p["attainment_target"] * strict) / scale
        tail_margin = p["tail_target"] - self.own_tail.value / ref
        return tail_margin > attainment_margin


def _check(policy: str, name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"policy {policy}: {name} must be in [{lo:g}, {hi:g}], got {value}")


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
