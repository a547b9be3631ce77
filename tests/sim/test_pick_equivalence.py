"""Property: the head-only pick equals a brute-force argmax over every queued job.

For random queues (tiers, models, enqueue times, requeues, cancels), random worker
compatibility and random tenant caps, every policy's :meth:`QueueBook.pick` must choose
exactly the job that ranking *all* queued jobs would choose, dispatch after dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import POLICIES, Policy, make_policy
from luma_ray.scheduler.queues import QueueBook, band_of
from luma_ray.scheduler.tiers import tier_specs

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
        ("slo_ratchet", {"guard_share": 1.0, "tier_bias": 0.0}),
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
    assert set(POLICIES) == {"fifo", "strict", "pct_slo", "edf", "slo_guard", "slo_ratchet"}
