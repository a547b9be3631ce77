"""The shadow schedulers and the default policy that steers between them (slo_shadow)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from luma_ray.config import default_tiers
from luma_ray.errors import ConfigError
from luma_ray.scheduler.policies import DEFAULT_POLICY, SloShadow, make_policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.shadows import RunningQuantile, ShadowBook
from luma_ray.scheduler.tiers import tier_specs

TIERS = tier_specs(default_tiers())
API, FREE = TIERS["api"], TIERS["free"]


def test_running_quantile_is_exact_on_a_rising_stream_and_errs_low_otherwise() -> None:
    rising = RunningQuantile(0.99)
    for k in range(5000):
        rising.add(k / 10)
    assert rising.value == (5000 - 50) / 10  # the least of the largest 1 %
    falling, seen = RunningQuantile(0.99, spare=4), []
    for k in range(5000):
        falling.add(-k / 10)
        seen.append(-k / 10)
    assert falling.value <= sorted(seen)[-50]  # the reserve ran out: low, never high


@pytest.mark.parametrize("q", [0.99, 0.999])
def test_running_quantile_is_exact_at_every_step(q: float) -> None:
    """Jobs served at once (wait/SLO 0) among long waits: the quantile must not sink to 0
    when the count grows (it did when the next value was admitted whatever it was)."""
    rng = random.Random(7)
    rq = RunningQuantile(q)
    seen: list[float] = []
    for i in range(12000):
        x = 0.0 if rng.random() < 0.3 else rng.expovariate(1.0) * (1 + i / 4000)
        rq.add(x)
        seen.append(x)
        if i % 101 == 0 or rq.n % int(1 / (1 - q) + 0.5) == 0:
            keep = max(1, int(len(seen) * (1 - q)))
            assert rq.value == sorted(seen)[-keep], i


def test_running_quantile_of_one_value_is_that_value() -> None:
    rq = RunningQuantile(0.999)
    assert rq.value == 0.0
    rq.add(2.5)
    assert rq.value == 2.5


def test_pct_shadow_dispatches_the_highest_wait_over_slo() -> None:
    book = ShadowBook(q=0.5)
    book.arrive(FREE, 0.0)  # at t=600: 600 / 7200 = 0.08
    book.arrive(API, 500.0)  # at t=600: 100 / 120 = 0.83
    book.dispatch(600.0)
    assert book.pct_tail.value == pytest.approx(100 / 120)
    book.dispatch(700.0)  # then the free job: 700 / 7200
    assert book.pct_tail.n == 2


def test_projection_drains_the_pct_queue_at_the_recent_dispatch_rate() -> None:
    """20 jobs of a 10 s SLO arrive at 0, one dispatch a second from t=1. Projections run at
    dispatches 1, 6, 9 (too few dispatches to know the rate: 0) and 12: 9 queued, 12 dispatches
    over 11 s, so the last of the 9 would go at 12 + 8 x 11 / 12 s, wait/SLO
    (12 + 8 x 11 / 12) / 10, the largest of the day (q 0.999 keeps one)."""
    tier = dataclasses.replace(API, max_wait_s=10.0)
    book = ShadowBook(q=0.999, rate_window_s=100.0, every=1)
    for _ in range(20):
        book.arrive(tier, 0.0)
    for t in range(1, 12):
        book.dispatch(float(t))
    assert book.projected == 0.0
    book.dispatch(12.0)
    assert book.pct_tail.value == pytest.approx(1.2)  # served so far: at most 12 s / 10 s
    assert book.projected == pytest.approx((12 + 8 * 11 / 12) / 10)


def test_a_sampled_projection_is_close_to_the_exact_one_and_its_cost_is_bounded() -> None:
    rng = random.Random(5)
    books = {n: ShadowBook(rate_window_s=600.0, every=10**9, sample=n) for n in (500, 10**9)}
    for book in books.values():
        rng.seed(5)
        t = 0.0
        for _ in range(100_000):
            t += rng.expovariate(100.0)
            book.arrive(rng.choice([API, FREE]), t)
    for book in books.values():
        for k in range(200):  # the first projection (dispatch 1) finds too few rates: 0
            book.dispatch(t + k)
        book.project(t + 200)
    sampled, exact = books[500].projected, books[10**9].projected
    assert exact > 1.0
    assert sampled == pytest.approx(exact, rel=0.02)


def test_strict_shadow_dispatches_tier_order_and_counts_weighted_attainment() -> None:
    book = ShadowBook()
    book.arrive(FREE, 0.0)
    book.arrive(API, 0.0)
    book.dispatch(100.0)  # api first, within its 120 s: met, weight 5
    assert (book.strict_met, book.strict_weight) == (API.weight, API.weight)
    book.dispatch(8000.0)  # free waited 8000 s > 7200 s: missed, weight 1
    assert (book.strict_met, book.strict_weight) == (API.weight, API.weight + FREE.weight)
    book.dispatch(9000.0)  # nothing left: no change
    assert book.strict_weight == API.weight + FREE.weight


def test_the_default_policy_is_slo_shadow_with_a_validated_knob() -> None:
    assert DEFAULT_POLICY == "slo_shadow"
    assert make_policy(DEFAULT_POLICY).params["tail_target"] == 1.1
    with pytest.raises(ConfigError, match="tail_target"):
        make_policy("slo_shadow", {"tail_target": 0.1})
    with pytest.raises(ConfigError, match="k_start"):
        make_policy("slo_shadow", {"k_start": 100.0})


def overload(policy: SloShadow, seconds: float, api_every: float, free_every: float) -> None:
    """One slot every 10 s; api and free jobs arrive faster than that. Drives the policy
    through a real queue book (fair share on)."""
    book = QueueBook(TIERS, fair_share=True)
    seq = 0
    t = 0.0
    next_api, next_free, next_slot = 0.0, 0.0, 0.0
    while t < seconds:
        t = min(next_api, next_free, next_slot)
        if t == next_api:
            book.push("api", "m", t, seq, "a")
            policy.on_arrival(API, t)
            seq, next_api = seq + 1, t + api_every
        elif t == next_free:
            book.push("free", "m", t, seq, f"f{seq % 7}")
            policy.on_arrival(FREE, t)
            seq, next_free = seq + 1, t + free_every
        else:
            book.pick(policy, ["m"], t)
            next_slot = t + 10.0


def test_the_record_band_starts_at_k_times_the_shadow_tail() -> None:
    policy = make_policy("slo_shadow")
    assert isinstance(policy, SloShadow)
    overload(policy, 6 * 3600.0, api_every=30.0, free_every=8.0)
    ref = policy.shadows.pct_tail.value
    assert ref > 1.0  # pct_slo itself is forced past every SLO by this overload
    assert policy.worst == pytest.approx(min(policy.self_worst, policy.k * ref))
    assert policy.params["k_min"] <= policy.k <= policy.params["k_max"]


def test_k_falls_when_the_tail_runs_over_its_target_and_rises_when_attainment_lags() -> None:
    tight = make_policy("slo_shadow", {"tail_target": 0.5, "attainment_target": 0.0})
    loose = make_policy("slo_shadow", {"tail_target": 100.0, "attainment_target": 1.0})
    assert isinstance(tight, SloShadow) and isinstance(loose, SloShadow)
    for p in (tight, loose):
        overload(p, 6 * 3600.0, api_every=30.0, free_every=8.0)
    assert tight.k == tight.params["k_min"]  # the tail never has room: k walks down
    assert loose.k > 2 * loose.params["k_start"]  # attainment always lags its target: k walks up
    assert loose.k_max == pytest.approx(loose.params["k_max"] * 100.0 / 1.1)  # the knob: ceiling


def test_a_lower_tail_target_starts_the_record_band_lower() -> None:
    """The knob: the same overload with tail_target 1.0 and 3.0."""
    worst = {}
    for target in (1.0, 3.0):
        p = make_policy("slo_shadow", {"tail_target": target})
        assert isinstance(p, SloShadow)
        overload(p, 8 * 3600.0, api_every=25.0, free_every=7.0)
        worst[target] = (p.k, p.worst)
    assert worst[1.0][0] < worst[3.0][0]
    assert worst[1.0][1] <= worst[3.0][1]
    assert math.isfinite(worst[3.0][1])
