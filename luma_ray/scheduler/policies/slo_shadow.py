"""``slo_shadow`` (the default): ``slo_ratchet`` steered by its own replayed yardsticks."""

from __future__ import annotations

import math

from luma_ray.scheduler.policies.policy import check_param
from luma_ray.scheduler.policies.slo_ratchet import SloRatchet
from luma_ray.scheduler.shadows import RunningQuantile, ShadowBook
from luma_ray.scheduler.tiers import TierSpec


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
        check_param(self.name, "tail_target", p["tail_target"], 0.5, 100.0)
        check_param(self.name, "attainment_target", p["attainment_target"], 0.0, 1.0)
        check_param(self.name, "k_min", p["k_min"], 0.01, p["k_max"])
        check_param(self.name, "k_start", p["k_start"], p["k_min"], p["k_max"])
        check_param(self.name, "step", p["step"], 0.0, 1.0)
        check_param(self.name, "quantile", p["quantile"], 0.5, 0.999999)
        check_param(self.name, "attainment_scale", p["attainment_scale"], 0.0, 1e12)
        check_param(self.name, "projection", p["projection"], 0.0, 1.0)
        check_param(self.name, "rate_window_s", p["rate_window_s"], 1.0, 1e7)
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
