"""Per-tenant counts inside each tier and the caps on them (``SchedulerConfig.tenant_limits``).

``max_queued`` refuses submits past it (``TenantLimited``, 429). ``max_leased`` keeps a
tenant's further jobs queued while it holds that many leases: with fair share the queue book
parks the tenant (:meth:`~luma_ray.scheduler.queues.QueueBook.set_capped`) the moment it
reaches its cap and unparks it the moment it drops below (every lease, completion, failure,
release, expiry and restore goes through :meth:`TenantCaps.count_lease`), so a pick never
scans past its jobs; without fair share the pick's ``eligible`` filter scans past them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from luma_ray.config import TenantLimits
from luma_ray.errors import TenantLimited
from luma_ray.jobs import Job
from luma_ray.scheduler.queues import QueueBook


class TenantCaps:
    """Queued and leased jobs per (tier, tenant), checked against the tier's caps."""

    def __init__(self, limits: Mapping[str, TenantLimits], book: QueueBook) -> None:
        self.limits = limits
        self.book = book
        self.queued: Counter[tuple[str, str]] = Counter()
        self.leased: Counter[tuple[str, str]] = Counter()
        self.max_leased = {
            tier: lim.max_leased for tier, lim in limits.items() if lim.max_leased is not None
        }

    def check_submit(self, tier: str, tenant: str, retry_after_s: float) -> None:
        """Raise ``TenantLimited`` if the tenant already has ``max_queued`` jobs queued."""
        limits = self.limits.get(tier)
        cap = limits.max_queued if limits else None
        if cap is not None and self.queued[(tier, tenant)] >= cap:
            raise TenantLimited(
                f"tenant has {cap} jobs queued in tier {tier}, its limit; wait for some to start",
                retry_after_s=retry_after_s,
            )

    def count_queued(self, job: Job, delta: int) -> None:
        self.queued[(job.tier, job.tenant)] += delta

    def count_lease(self, job: Job, delta: int) -> None:
        """A lease of ``job`` starts (+1) or ends (-1); parks or unparks its tenant at the cap."""
        key = (job.tier, job.tenant)
        before = self.leased[key]
        after = self.leased[key] = before + delta
        cap = self.max_leased.get(job.tier)
        if cap is not None and (before >= cap) != (after >= cap):
            self.book.set_capped(job.tier, job.tenant, after >= cap)

    def eligible(self, job_at: Mapping[int, Job]) -> Callable[[str, int], bool] | None:
        """The pick's filter without fair share (None when no tier caps leases)."""
        if self.book.fair_share or not self.max_leased:
            return None
        capped, leased = self.max_leased, self.leased

        def eligible(tier: str, seq: int) -> bool:
            cap = capped.get(tier)
            return cap is None or leased[(tier, job_at[seq].tenant)] < cap

        return eligible
