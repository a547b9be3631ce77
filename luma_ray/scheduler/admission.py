"""Admission checks the scheduler service runs before it queues a job. Pure: the time is an
argument, and each check raises the error the caller sees (and nothing is queued).

- :func:`shed`: a tier with ``shed_ratio`` refuses new jobs while the predicted wait is
  that many SLOs past its limit (``Overloaded``, with a retry-after).
- :func:`check_pin`: ``model@version`` is accepted only if a worker runs that version now
  or it is the active version, so a pinned job never waits for a worker that will not come.
"""

from __future__ import annotations

from collections.abc import Callable

from luma_ray.errors import InvalidRequest, Overloaded
from luma_ray.jobs import Job
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.estimates import Estimates
from luma_ray.scheduler.rollouts import Rollouts


def shed(core: SchedulerCore, estimates: Estimates, job: Job, now: float) -> None:
    """Raise ``Overloaded`` if ``job``'s tier sheds and a new job would wait too long."""
    tier = core.tiers[job.tier]
    if tier.shed_ratio is None:
        return
    ahead = core.queued_ahead_of_new(job.tier, job.model)
    predicted = max(
        core.oldest_wait_s(job.tier, job.model, now),
        estimates.wait_for(job.model, ahead, now),
    )
    limit = tier.shed_ratio * tier.max_wait_s
    if predicted > limit:
        raise Overloaded(
            f"tier {job.tier} is overloaded: a new job would wait about {predicted:.0f} s, "
            f"past {tier.shed_ratio:g}x its {tier.max_wait_s:g} s SLO; retry later",
            retry_after_s=round(min(3600.0, max(1.0, predicted - limit)), 1),
        )


def check_pin(
    rollouts: Rollouts,
    active_version: Callable[[str], str | None],
    model: str,
    version: str,
    now: float,
) -> None:
    """Raise ``InvalidRequest`` naming the versions one can pin, unless ``version`` runs."""
    served = rollouts.served_versions(model, now)
    if version in served:
        return
    active = active_version(model)
    if version == active:
        return
    running = ", ".join(sorted(served | ({active} if active else set()))) or "none"
    raise InvalidRequest(
        f"no worker runs version {version!r} of {model}; pin one of: {running} "
        f"(or promote {version!r} first, or drop '@{version}')"
    )
