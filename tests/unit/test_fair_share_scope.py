"""Fair share's scope: one virtual-time account per (tier, tenant) is the intent.

The simulator keeps one queue per tier, so there a tenant's virtual time counts everything it
runs in the tier. The live scheduler keeps one queue per (tier, model), each with its own
virtual times, so a tenant served many times on one model starts level with the others on the
next. On a trace with many models (GenTD26 has 85) a flood is then contained only where it is
past the lag in one model's queue, and the live core's picks part from the simulator's
(docs/scheduling.md, "Not yet confirmed on the live scheduler"). The second test states the
intended behaviour and is expected to fail until the model queues of a tier share the accounts.
"""

from __future__ import annotations

import pytest

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


@pytest.mark.xfail(
    strict=True,
    reason="fair share is per (tier, model) queue in the live scheduler, per tier in the "
    "simulator (docs/scheduling.md)",
)
def test_across_models_the_tenant_served_more_waits() -> None:
    assert served_big_then_asked("b") == "small"
