"""Property: the head-only pick equals a brute-force argmax over every queued job.

For random queues (tiers, models, enqueue times, requeues, cancels), random worker
compatibility and random tenant caps, every policy's :meth:`QueueBook.pick` must choose
exactly the job that ranking *all* queued jobs would choose, dispatch after dispatch; with
fair share, exactly the job the written-out definition (tests/sim/fair_definition.py) picks,
with vtime ties, lifts, weights, caps parking and unparking, requeues, cancels, every band of
slo_guard and a policy whose bands move. The seeded runs count the picks of each kind
(fair-share band 0, age pick per band) and require every kind to occur.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import POLICIES, Policy, make_policy
from luma_ray.scheduler.queues import QueueBook, band_of
from luma_ray.scheduler.tiers import tier_specs
from tests.sim.fair_definition import Definition, FairEntry

TIERS = tier_specs(default_tiers())
MODELS = ["m0", "m1", "m2"]


@dataclass
class Entry:
    tier: str
    model: str
    tenant: str
    enqueued_at_s: float
    seq: int


def brute_force(
    policy: Policy, entries: dict[int, Entry], models: set[str], now_s: float, eligible
) -> int | None:
    best = None
    best_seq = None
    for e in entries.values():
        if e.model not in models or (eligible and not eligible(e.tier, e.seq)):
            continue
        tier = TIERS[e.tier]
        band = band_of(policy.bands(tier), e.enqueued_at_s, now_s)
        key = (policy.rank(tier, band, now_s - e.enqueued_at_s), -e.enqueued_at_s, -e.seq)
        if best is None or key > best:
            best, best_seq = key, e.seq
    return best_seq


policy_specs = st.sampled_from(
    [
        ("fifo", {}),
        ("strict", {}),
        ("pct_slo", {}),
        ("edf", {}),
        ("slo_guard", {}),
        ("slo_guard", {"r_cap": 1.0, "guard_share": 1.0}),
        ("slo_guard", {"r_cap": 2.0, "guard_share": 0.25, "tier_bias": 1.0}),
        ("slo_guard", {"r_cap": 5.0, "guard_share": 0.0, "tier_bias": 0.2}),
        ("slo_ratchet", {}),
        ("slo_ratchet", {"ratchet": 0.5, "floor": 1.5, "memory_s": 600.0}),
        ("slo_ratchet", {"guard_share": 1.0, "worst_share": 1.0, "tier_bias": 0.0}),
        ("slo_shadow", {}),
        ("slo_shadow", {"tail_target": 1.0, "step": 0.05, "attainment_scale": 1.0}),
    ]
)

# Enqueue times on a coarse grid so that ties and band edges are common.
times = st.integers(min_value=0, max_value=40).map(lambda k: k * 90.0)
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(list(TIERS)),
            st.sampled_from(MODELS),
            st.sampled_from(["a", "b", "c"]),
            times,
        ),
        st.tuples(st.just("cancel"), st.integers(0, 200)),
        st.tuples(
            st.just("pick"),
            st.sets(st.sampled_from(MODELS), min_size=1),
            st.integers(0, 30).map(lambda k: k * 400.0),
        ),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=policy_specs, ops=ops, cap=st.sampled_from([None, 1, 2]))
def test_head_only_pick_equals_brute_force(spec, ops, cap) -> None:
    name, params = spec
    policy = make_policy(name, params)
    shadow = make_policy(name, params)  # same state, used only to rank for the brute force
    book = QueueBook(TIERS)
    entries: dict[int, Entry] = {}
    running: dict[str, int] = {}
    now = 0.0
    seq = 0
    order: list[int] = []

    def eligible(tier: str, s: int) -> bool:
        return running.get(entries[s].tenant, 0) < cap  # type: ignore[operator]

    for op in ops:
        if op[0] == "add":
            _, tier, model, tenant, t = op
            # Requeues keep an old enqueue time, so adds may be older than the tail.
            e = Entry(tier, model, tenant, min(t, now + 3600.0), seq)
            entries[seq] = e
            order.append(seq)
            book.push(tier, model, e.enqueued_at_s, seq)
            policy.on_arrival(TIERS[tier], e.enqueued_at_s)
            shadow.on_arrival(TIERS[tier], e.enqueued_at_s)
            seq += 1
        elif op[0] == "cancel" and order:
            victim = order[op[1] % len(order)]
            e = entries.pop(victim, None)
            if e is not None:
                assert book.discard(e.tier, e.model, e.enqueued_at_s, e.seq)
        elif op[0] == "pick":
            _, models, dt = op
            now = max(now, max((e.enqueued_at_s for e in entries.values()), default=0.0)) + dt
            filt = eligible if cap is not None else None
            expected = brute_force(shadow, entries, models, now, filt)
            got = book.pick(policy, models, now, filt)
            assert (got.seq if got else None) == expected, (name, params, now)
            if got is not None:
                e = entries.pop(got.seq)
                tier = TIERS[e.tier]
                band = band_of(shadow.bands(tier), e.enqueued_at_s, now)
                assert band == got.band
                shadow.on_dispatch(tier, band, now - e.enqueued_at_s, now)
                running[e.tenant] = running.get(e.tenant, 0) + 1
    assert len(book) == len(entries)


def test_every_policy_is_covered() -> None:
    assert set(POLICIES) == {
        "fifo",
        "strict",
        "pct_slo",
        "edf",
        "slo_guard",
        "slo_ratchet",
        "slo_shadow",
    }


# ---- fair share (the definition: tests/sim/fair_definition.py) ----------------------


class Shifting(Policy):
    """slo_guard whose band thresholds move after every dispatch (an adaptive policy): bands
    are read at pick time, so tenants must leave and re-enter band 0 without a push."""

    name = "shifting"

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_policy("slo_guard", {"r_cap": 3.0})
        self.n = 0

    def bands(self, tier):  # type: ignore[no-untyped-def]
        scale = (1.0, 0.4, 2.5, 1.0, 0.7)[self.n % 5]
        return tuple(h * scale for h in self.inner.bands(tier))

    def rank(self, tier, band, wait_s):  # type: ignore[no-untyped-def]
        return self.inner.rank(tier, band, wait_s)

    def on_dispatch(self, tier, band, wait_s, now_s) -> None:  # type: ignore[no-untyped-def]
        self.inner.on_dispatch(tier, band, wait_s, now_s)
        self.n += 1


def fresh_policy(spec: tuple[str, dict]) -> Policy:
    name, params = spec
    return Shifting() if name == "shifting" else make_policy(name, params)


FAIR_SPECS = [
    ("fifo", {}),
    ("strict", {}),
    ("pct_slo", {}),
    ("edf", {}),
    ("slo_guard", {}),
    ("slo_guard", {"r_cap": 2.0, "guard_share": 0.25, "tier_bias": 1.0}),
    ("slo_guard", {"r_cap": 5.0, "guard_share": 0.0, "tier_bias": 0.2}),
    ("slo_ratchet", {}),
    ("slo_ratchet", {"ratchet": 0.5, "floor": 1.5, "memory_s": 600.0}),
    ("slo_shadow", {}),
    ("slo_shadow", {"tail_target": 1.0, "step": 0.05, "attainment_scale": 1.0}),
    ("shifting", {}),
]
fair_policies = st.sampled_from(FAIR_SPECS)
TENANTS = ["a", "b", "c", "d"]
fair_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(list(TIERS)),
            st.sampled_from(MODELS[:2]),
            st.sampled_from(TENANTS),
            times | st.sampled_from([-0.0 - 1e-9, -60.0, -600.0, -5000.0]),
            st.sampled_from([1.0, 1.0, 2.0, 0.5]),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 200)),
        st.tuples(st.just("finish"), st.integers(0, 200)),
        st.tuples(st.just("requeue"), st.integers(0, 200)),
        st.tuples(
            st.just("pick"),
            st.sets(st.sampled_from(MODELS[:2]), min_size=1),
            st.integers(0, 30).map(lambda k: k * 400.0),
        ),
    ),
    min_size=1,
    max_size=150,
)


def run_fair(
    spec: tuple[str, dict],
    ops: list,
    caps: dict[str, int],
    weights: dict[str, float],
    compactions: list[int] | None = None,
    lag_jobs: float = 2.0,
) -> tuple[Counter, Counter]:
    """Replay ``ops`` on a fair-share book and on the definition, checking every pick.
    Returns the picks made by kind ("fair", 0) / ("age", band), and the states met."""
    policy, shadow = fresh_policy(spec), fresh_policy(spec)
    book = QueueBook(TIERS, fair_share=True, weights=weights, lag_jobs=lag_jobs)
    d = Definition(shadow, weights, caps, lag_jobs=lag_jobs)
    leased: list[FairEntry] = []
    kinds: Counter = Counter()
    order: list[int] = []
    now, seq = 0.0, 0

    def lease_delta(e: FairEntry, delta: int) -> None:
        before = d.leased[(e.tier, e.tenant)]
        d.leased[(e.tier, e.tenant)] += delta
        cap = caps.get(e.tier)
        if cap is not None and (before >= cap) != (before + delta >= cap):
            book.set_capped(e.tier, e.tenant, before + delta >= cap)

    def queue(e: FairEntry) -> None:
        d.push(e)
        book.push(e.tier, e.model, e.enqueued_at_s, e.seq, e.tenant, e.cost)

    for op in ops:
        if op[0] == "add":
            _, tier, model, tenant, t, cost = op
            at = now + t if t < 0 else min(t, now + 3600.0)  # t < 0: that long before now
            e = FairEntry(tier, model, tenant, at, seq, cost)
            order.append(seq)
            seq += 1
            queue(e)
            policy.on_arrival(TIERS[tier], at)
            shadow.on_arrival(TIERS[tier], at)
        elif op[0] == "cancel" and order:
            victim = d.queued.get(order[op[1] % len(order)])
            if victim is not None:
                d.cancel(victim)
                assert book.discard(
                    victim.tier, victim.model, victim.enqueued_at_s, victim.seq, victim.tenant
                )
        elif op[0] in ("finish", "requeue") and leased:
            e = leased.pop(op[1] % len(leased))
            lease_delta(e, -1)
            if op[0] == "requeue":  # back to its tenant's queue with its original enqueue time
                queue(e)
        elif op[0] == "pick":
            _, models, dt = op
            now = max(now, max((e.enqueued_at_s for e in d.queued.values()), default=0.0)) + dt
            want = d.pick(models, now)
            got = book.pick(policy, models, now)
            assert ((got.seq, got.band) if got else None) == want, (spec, now, got, want)
            if got is None:
                continue
            e = d.queued[got.seq]
            assert got.tenant == e.tenant
            tier = TIERS[e.tier]
            shadow.on_dispatch(tier, got.band, now - e.enqueued_at_s, now)
            d.dispatch(e)
            kinds[("fair", 0) if got.band == 0 else ("age", got.band)] += 1
            leased.append(e)
            lease_delta(e, +1)
    assert len(book) == len(d.queued)
    if compactions is not None:
        compactions.append(sum(lane.compactions for lane in book.queues.values()))
    return kinds, d.seen


caps_st = st.sampled_from([{}, {"free": 1}, {t: 1 for t in TIERS}, {"api": 2, "free": 1}])
weights_st = st.sampled_from([{}, {"a": 2.0}, {"a": 0.5, "c": 3.0}])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=fair_policies,
    ops=fair_ops,
    caps=caps_st,
    weights=weights_st,
    lag=st.sampled_from([0.0, 2.0, 1000.0]),
)
def test_fair_share_pick_equals_definition(spec, ops, caps, weights, lag) -> None:
    run_fair(spec, ops, caps, weights, lag_jobs=lag)


def random_ops(
    rng: random.Random,
    n: int,
    tiers: list[str] | None = None,
    models: list[str] = MODELS[:2],
    flood: float = 0.0,
) -> list:
    """``flood``: the share of adds that go to tenant "a" (the others spread over TENANTS)."""
    tiers = tiers or list(TIERS)
    out: list = []
    for _ in range(n):
        x = rng.random()
        if x < 0.4:
            out.append(
                (
                    "add",
                    rng.choice(tiers),
                    rng.choice(models),
                    "a" if rng.random() < flood else rng.choice(TENANTS),
                    rng.choice(
                        [rng.randint(0, 40) * 90.0, -rng.choice([1e-9, 1e-9, 60, 600, 5000])]
                    ),
                    rng.choice([1.0, 1.0, 2.0, 0.5]),
                )
            )
        elif x < 0.45:
            out.append(("cancel", rng.randint(0, 10_000)))
        elif x < 0.6:
            out.append(("finish", rng.randint(0, 10_000)))
        elif x < 0.65:
            out.append(("requeue", rng.randint(0, 10_000)))
        else:
            models_now = set(rng.sample(models, rng.randint(1, len(models))))
            out.append(("pick", models_now, rng.choice([0.0, 10.0, 30.0, 100.0, 400.0, 3000.0])))
    return out


@pytest.mark.parametrize("spec", FAIR_SPECS)
def test_fair_share_runs_meet_every_kind_of_pick(spec) -> None:
    """A long seeded run per policy, with caps and weights: every pick kind the policy has
    (fair-share band 0; age pick in each band >= 1) and every fair-share state occurs."""
    kinds: Counter = Counter()
    seen: Counter = Counter()
    for seed in range(3):
        k, s = run_fair(
            spec, random_ops(random.Random(seed), 700), {"free": 1, "api": 2}, {"a": 2.0}
        )
        kinds += k
        seen += s
    print(spec, dict(kinds), dict(seen))
    bands = {"slo_guard": 3, "shifting": 3, "slo_ratchet": 4, "slo_shadow": 4}.get(spec[0], 1)
    assert set(kinds) == {("fair", 0)} | {("age", b) for b in range(1, bands)}
    assert seen["lift"] and seen["vtime_tie"] and seen["parked"] and seen["charge_elsewhere"]
    assert seen["within_lag"] and seen["past_lag"]  # deadline order, then fair share


@pytest.mark.parametrize("spec", [s for s in FAIR_SPECS if s[0] in ("slo_guard", "slo_shadow")])
def test_flood_runs_meet_every_kind_of_contained_pick(spec) -> None:
    """Tenant "a" sends 75 % of the jobs of a free and an api lane: every way a flood's lane is
    served occurs (another tenant's band-0 job in its place, the flood's own oldest job when no
    other tenant has a band-0 job it may start, the lane held back behind a heavier tier's band-0
    job), and every pick equals the definition."""
    seen: Counter = Counter()
    for seed in range(8):
        ops = random_ops(random.Random(seed), 900, tiers=["free", "free", "api"], flood=0.75)
        for caps in ({}, {"free": 1}):  # capped: the other tenants' jobs offer nothing
            _, s = run_fair(spec, ops, caps, {})
            seen += s
    print(spec, dict(seen))
    assert seen["flood_other"] and seen["flood_self"] and seen["flood_held_back"]


def test_long_run_through_heap_compaction() -> None:
    """Thousands of dispatches in few lanes: the lanes rebuild their heaps (dropping stale
    entries) along the way, and every pick still equals the definition."""
    ops = random_ops(random.Random(7), 9000, tiers=["free"], models=["m0"])
    kinds, _ = run_fair(("fifo", {}), ops, {}, {"b": 3.0}, compactions := [])
    assert sum(kinds.values()) > 2000
    assert compactions[0] > 0
