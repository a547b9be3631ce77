"""Flood containment in the fair-share pick (docs/scheduling.md, "A flood is contained").

A tenant that holds more than ``flood_share`` of a queue and is past the lag floods it. Its
oldest job, already past its SLO, would go first by the policy's guard; contained, the queue
serves another tenant's savable job in its place, and never goes ahead of a heavier tier's
savable job. ``flood_share`` 1 turns containment off, which is the comparison here.
"""

from __future__ import annotations

from luma_ray.config import SchedulerConfig, default_tiers
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.policies import Policy, make_policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.tiers import tier_specs

TIERS = tier_specs(default_tiers())
LATE_S = 9000.0  # past free's 2 h SLO for jobs queued at 0


def flooded_book(flood_share: float, api_job: bool) -> tuple[QueueBook, Policy]:
    """Ten free jobs of "flood" at 0 and one of "small" (fresh at LATE_S); three flood jobs
    served while it was within the lag (2 jobs), so it is past it; optionally an api job."""
    book = QueueBook(TIERS, fair_share=True, lag_jobs=2.0, flood_share=flood_share)
    policy = make_policy("slo_ratchet")
    for seq in range(10):
        book.push("free", "m", 0.0, seq, "flood")
    book.push("free", "m", LATE_S, 10, "small")
    for _ in range(3):
        got = book.pick(policy, ["m"], 1.0)
        assert got is not None and got.tenant == "flood"
    if api_job:
        book.push("api", "m", LATE_S, 11, "someone")
    return book, policy


def test_the_other_tenants_savable_job_goes_before_the_floods_late_one() -> None:
    book, policy = flooded_book(0.7, api_job=False)
    got = book.pick(policy, ["m"], LATE_S + 1)
    assert got is not None and (got.tenant, got.band) == ("small", 0)
    book, policy = flooded_book(1.0, api_job=False)  # no containment: the guard serves the flood
    got = book.pick(policy, ["m"], LATE_S + 1)
    assert got is not None and (got.tenant, got.band) == ("flood", 1)


def test_a_flood_never_goes_ahead_of_a_heavier_tiers_savable_job() -> None:
    book, policy = flooded_book(0.7, api_job=True)
    got = book.pick(policy, ["m"], LATE_S + 1)
    assert got is not None and got.tier == "api"
    book, policy = flooded_book(1.0, api_job=True)
    got = book.pick(policy, ["m"], LATE_S + 1)
    assert got is not None and (got.tier, got.tenant) == ("free", "flood")


def test_the_scheduler_takes_its_flood_share_from_the_config() -> None:
    core = SchedulerCore(SchedulerConfig(fair_share_flood_share=0.9))
    assert core.queues.flood_share == 0.9
    assert core.queues.queue("free", "m").flood_share == 0.9  # type: ignore[union-attr]
