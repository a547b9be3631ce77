"""Fair share with a lag: deadline order while tenants are close, fair share past the lag."""

from __future__ import annotations

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import make_policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.tiers import tier_specs

TIERS = tier_specs(default_tiers())


def picks(lag_jobs: float, n: int) -> list[str]:
    """Tenant ``big`` queues 20 jobs, then ``small`` queues 3; both are savable (free's SLO is
    two hours). The tenants of the first ``n`` picks."""
    book = QueueBook(TIERS, fair_share=True, lag_jobs=lag_jobs)
    policy = make_policy("slo_shadow")
    seq = 0
    for k in range(20):
        book.push("free", "m", float(k), seq, "big")
        seq += 1
    for k in range(3):
        book.push("free", "m", 100.0 + k, seq, "small")
        seq += 1
    out = []
    for _ in range(n):
        p = book.pick(policy, ["m"], 200.0)
        assert p is not None
        out.append(p.tenant)
    return out


def test_within_the_lag_the_oldest_savable_job_goes_first() -> None:
    assert picks(lag_jobs=1000.0, n=23) == ["big"] * 20 + ["small"] * 3


def test_past_the_lag_fair_share_lets_the_other_tenant_in() -> None:
    got = picks(lag_jobs=2.0, n=23)
    first_small = got.index("small")
    # big runs ahead by at most the lag (2 mean jobs, plus the dispatch that crossed it)
    assert first_small <= 4
    assert got.count("small") == 3 and got.count("big") == 20


def test_without_a_lag_it_is_pure_fair_share() -> None:
    assert picks(lag_jobs=0.0, n=6)[:6] == ["big", "small", "big", "small", "big", "small"]
