"""Fair share's scope: one virtual-time account per (tier, tenant), shared by the tier's
model queues (luma_ray/scheduler/accounts.py).

A tenant served on one model of a tier waits for the others on the tier's next model, as it
does in the simulator, which keeps one queue per tier. With an account per (tier, model) queue,
as the live scheduler had before, it started level there: on a trace with many models (GenTD26
has 87) a flood was then contained only where it was past the lag in one model's queue.
"""

from __future__ import annotations

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import make_policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.tiers import tier_specs

TIERS = tier_specs(default_tiers())


def served_big_then_asked(second_model: str) -> str:
    """Queued: a job of "big" for model "a"; a job of "big" and a later one of "small" for
    ``second_model``. The first pick, for model "a", serves "big"; whose job goes next on
    ``second_model`` (pure fair share, every job savable)?"""
    book = QueueBook(TIERS, fair_share=True, lag_jobs=0.0)
    policy = make_policy("slo_ratchet")
    book.push("free", "a", 0.0, 0, "big")
    book.push("free", second_model, 0.0, 1, "big")
    book.push("free", second_model, 0.5, 2, "small")
    first = book.pick(policy, ["a"], 1.0)
    assert first is not None and first.tenant == "big"
    got = book.pick(policy, [second_model], 1.0)
    assert got is not None
    return got.tenant


def test_in_one_model_the_tenant_served_more_waits() -> None:
    assert served_big_then_asked("a") == "small"


def test_across_models_the_tenant_served_more_waits() -> None:
    assert served_big_then_asked("b") == "small"
