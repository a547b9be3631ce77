"""The queue book: every queued job by (tier, model), and the head-only pick across them.

With fair share (the default, ``SchedulerConfig.fair_share``), each (tier, model) queue is a
:class:`~luma_ray.scheduler.shares.FairLane`: per-tenant FIFO sub-queues with virtual time.
The pick reads the policy's band thresholds per tier at pick time and ranks two candidates per
lane: the fair-share candidate of band 0 (the least-vtime tenant's oldest band-0 job) and the
age candidate (the lane's oldest job of any uncapped tenant) when it is in a band >= 1. The
policy contract (:mod:`luma_ray.scheduler.policies`) makes the oldest job the best one among
bands >= 1. Tenants at their ``max_leased`` cap are parked by :meth:`QueueBook.set_capped`,
so no pick scans past their jobs: O(lanes x log tenants) amortised, flat in depth.

Without fair share each lane is one :class:`~luma_ray.scheduler.job_queue.JobQueue`, FIFO
across tenants: the pick finds each band's oldest live job with one bisection and ranks those,
O(queues x bands x log n); caps then cost a forward scan through ``eligible``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple

from luma_ray.scheduler.accounts import Accounts
from luma_ray.scheduler.job_facts import JobFacts
from luma_ray.scheduler.job_queue import JobQueue
from luma_ray.scheduler.policies import Policy
from luma_ray.scheduler.shares import DEFAULT_FLOOD_SHARE, DEFAULT_LAG_JOBS, FairLane, Tenant
from luma_ray.scheduler.tiers import TierSpec

__all__ = ["FairLane", "JobQueue", "Pick", "QueueBook", "band_of"]

_INF = float("inf")

Lane = JobQueue | FairLane


class Pick(NamedTuple):
    """The job a pick chose: its queue key, sequence number, band and wait (and, with fair
    share, its tenant; band 0 is then a fair-share pick, a band >= 1 an age pick). A named
    tuple: the simulator makes one per dispatch."""

    tier: str
    model: str
    seq: int
    enqueued_at_s: float
    band: int
    wait_s: float
    rank: float
    tenant: str = ""


class QueueBook:
    """All queues, keyed by (tier, model), and the head-only pick over them."""

    def __init__(
        self,
        tiers: dict[str, TierSpec],
        fair_share: bool = False,
        weights: Mapping[str, float] | None = None,
        lag_jobs: float = DEFAULT_LAG_JOBS,
        facts: JobFacts | None = None,
        flood_share: float = DEFAULT_FLOOD_SHARE,
    ) -> None:
        self.tiers = tiers
        self.lag_jobs = lag_jobs
        self.flood_share = flood_share
        self.facts = facts
        """Where fair share reads a queued job's tenant and cost (None: each lane keeps them)."""
        self.fair_share = fair_share
        self.weights = dict(weights or {})
        self.queues: dict[tuple[str, str], Lane] = {}
        self._by_model: dict[str, list[tuple[TierSpec, str, Lane]]] = {}
        self._model_of: dict[int, str] = {}
        self._lanes_of_tier: dict[str, list[FairLane]] = {}
        self._accounts: dict[str, Accounts] = {}
        """Per tier, the tenants' virtual times, shared by the tier's model lanes."""
        self._capped: set[tuple[str, str]] = set()

    def queue(self, tier: str, model: str) -> Lane:
        key = (tier, model)
        q = self.queues.get(key)
        if q is None:
            if self.fair_share:
                accounts = self._accounts.setdefault(tier, Accounts())
                lane = FairLane(
                    self._weight_of, self.lag_jobs, self.facts, self.flood_share, accounts
                )
                self._lanes_of_tier.setdefault(tier, []).append(lane)
                q = lane
            else:
                q = JobQueue()
            self.queues[key] = q
            self._model_of[id(q)] = model
            self._by_model.setdefault(model, []).append((self.tiers[tier], model, q))
        return q

    def _weight_of(self, tenant: str) -> float:
        return self.weights.get(tenant, 1.0)

    def push(
        self,
        tier: str,
        model: str,
        enqueued_at_s: float,
        seq: int,
        tenant: str = "",
        cost: float = 1.0,
    ) -> None:
        """Queue a job; with fair share ``tenant`` is charged ``cost`` when it is dispatched."""
        q = self.queue(tier, model)
        if isinstance(q, FairLane):
            q.push(enqueued_at_s, seq, tenant, cost, (tier, tenant) in self._capped)
        else:
            q.push(enqueued_at_s, seq)

    def discard(
        self, tier: str, model: str, enqueued_at_s: float, seq: int, tenant: str = ""
    ) -> bool:
        """Tombstone a queued job (cancel, tenant limit); False if it was not queued."""
        q = self.queues.get((tier, model))
        if q is None:
            return False
        if isinstance(q, FairLane):
            return q.discard(enqueued_at_s, seq, tenant)
        i = q.find(enqueued_at_s, seq)
        if i is None:
            return False
        q.remove_at(i)
        return True

    def set_capped(self, tier: str, tenant: str, capped: bool) -> None:
        """A tenant reached (``capped``) or dropped below its ``max_leased`` cap in ``tier``.
        With fair share its jobs offer no candidate while capped; without, a no-op (the pick's
        ``eligible`` filter applies caps)."""
        if capped:
            self._capped.add((tier, tenant))
        else:
            self._capped.discard((tier, tenant))
        for lane in self._lanes_of_tier.get(tier, ()):
            lane.set_capped(tenant, capped)

    def oldest_s(self, tier: str, model: str) -> float | None:
        """Enqueue time of the queue's oldest job, or None when it is empty."""
        q = self.queues.get((tier, model))
        if q is None or not q.live:
            return None
        if isinstance(q, FairLane):
            return q.oldest_s()
        return q.times[q.first_live()]

    def head_seq(self, tier: str, model: str) -> int | None:
        """Sequence number of the queue's oldest job that may start now (with fair share, of
        an uncapped tenant), or None."""
        q = self.queues.get((tier, model))
        if q is None or not q.live:
            return None
        if isinstance(q, FairLane):
            found = q.age_candidate()
            return None if found is None else found[0].q.seqs[found[1]]
        return q.seqs[q.first_live()]

    def ahead(
        self, tier: str, model: str, enqueued_at_s: float, seq: int, tenant: str = ""
    ) -> int | None:
        """Queued jobs ahead of this one in its queue (with fair share: its tenant's own jobs
        ahead of it); an upper bound, as tombstones may count. None if it is not queued."""
        q = self.queues.get((tier, model))
        if q is None:
            return None
        if isinstance(q, FairLane):
            return q.ahead(enqueued_at_s, seq, tenant)
        i = q.find(enqueued_at_s, seq)
        return None if i is None else max(0, min(i - q.head, q.live - 1))

    def __len__(self) -> int:
        return sum(q.live for q in self.queues.values())

    def candidates(self, models: Iterable[str]) -> Iterator[tuple[TierSpec, str, Lane]]:
        for model in models:
            yield from self._by_model.get(model, ())

    def pick(
        self,
        policy: Policy,
        models: Iterable[str],
        now_s: float,
        eligible: Callable[[str, int], bool] | None = None,
        take: bool = True,
    ) -> Pick | None:
        """The best queued job a worker serving ``models`` can run now, per ``policy``.

        Candidates are ranked by (rank, older, lower seq). With fair share, each lane offers
        its fair-share band-0 candidate and its age candidate (when that one is in a band >=
        1); caps come from :meth:`set_capped` and ``eligible`` must be None. Without fair
        share, each queue offers each band's oldest live job, and ``eligible(tier, seq)``
        filters out jobs that may not start now (a tenant at its running cap) at the cost of a
        forward scan past them. With ``take`` the job leaves its queue, its tenant is charged
        and the policy is told. This is the hot path of the scheduler and the simulator.
        """
        if self.fair_share:
            if eligible is not None:
                raise ValueError("with fair share, caps go through set_capped, not eligible")
            return self._pick_fair(policy, models, now_s, take)
        return self._pick_fifo(policy, models, now_s, eligible, take)

    def _pick_fair(
        self, policy: Policy, models: Iterable[str], now_s: float, take: bool
    ) -> Pick | None:
        rank = policy.rank
        bands = policy.bands
        best_r = -_INF
        best_t = _INF
        best_s = -1
        best_at = None
        heaviest = -_INF  # the heaviest tier with a band-0 candidate
        contained: list[tuple[float, float, int, _At]] = []  # floods' lanes (shares.py)
        for tier, _model, lane in self.candidates(models):
            if not lane.live:
                continue
            assert isinstance(lane, FairLane)
            thresholds = bands(tier)
            cut = now_s - thresholds[0] if thresholds else -_INF
            fair = lane.fair_candidate(cut)
            if fair is not None:
                rec, i = fair
                t, s = rec.q.times[i], rec.q.seqs[i]
                r = rank(tier, 0, now_s - t)
                heaviest = max(heaviest, tier.weight)
                if r > best_r or (r == best_r and (t < best_t or (t == best_t and s < best_s))):
                    best_r, best_t, best_s, best_at = r, t, s, (tier, lane, rec, i, 0)
            if not thresholds:
                continue
            found = lane.age_candidate()
            if found is None:
                continue
            rec, i = found
            t, s = rec.q.times[i], rec.q.seqs[i]
            if t > cut:
                continue
            band = band_of(thresholds, t, now_s)
            r = rank(tier, band, now_s - t)
            if lane.floods(rec):  # the lane keeps this rank; another tenant's job goes first
                at = _instead_of_flood(tier, lane, rec, i, band, fair)
                contained.append((r, at[2].q.times[at[3]], at[2].q.seqs[at[3]], at))
                continue
            if r > best_r or (r == best_r and (t < best_t or (t == best_t and s < best_s))):
                best_r, best_t, best_s, best_at = r, t, s, (tier, lane, rec, i, band)
        for r, t, s, at in contained:  # never ahead of a heavier tier's band-0 job
            if at[0].weight >= heaviest and (
                r > best_r or (r == best_r and (t < best_t or (t == best_t and s < best_s)))
            ):
                best_r, best_t, best_s, best_at = r, t, s, at
        if best_at is None:
            return None
        tier, lane, rec, i, band = best_at
        if take:
            lane.take(rec, i)
            policy.on_dispatch(tier, band, now_s - best_t, now_s)
        model = self._model_of[id(lane)]
        return Pick(tier.name, model, best_s, best_t, band, now_s - best_t, best_r, rec.name)

    def _pick_fifo(
        self,
        policy: Policy,
        models: Iterable[str],
        now_s: float,
        eligible: Callable[[str, int], bool] | None,
        take: bool,
    ) -> Pick | None:
        rank = policy.rank
        bands = policy.bands
        best_r = -_INF
        best_t = _INF
        best_s = -1
        best_at: tuple[TierSpec, JobQueue, int, int] | None = None
        for tier, _model, q in self.candidates(models):
            if not q.live:
                continue
            assert isinstance(q, JobQueue)
            thresholds = bands(tier)
            times, seqs, skip, head = q.times, q.seqs, q._skip, q.head
            n = len(times)
            band = len(thresholds)
            i = head
            while True:
                if i in skip:
                    i = q.live_from(i)
                if eligible is not None:
                    while i < n and not eligible(tier.name, seqs[i]):
                        i = q.live_from(i + 1)
                if i >= n:
                    break
                # Band 0 takes any wait, even a negative one (a clock that stepped back).
                lo_cut = now_s - thresholds[band - 1] if band else _INF
                t = times[i]
                if t <= lo_cut:
                    r = rank(tier, band, now_s - t)
                    if r > best_r or (
                        r == best_r and (t < best_t or (t == best_t and seqs[i] < best_s))
                    ):
                        best_r, best_t, best_s, best_at = r, t, seqs[i], (tier, q, i, band)
                if not band:
                    break
                band -= 1
                if t <= lo_cut:
                    i = bisect.bisect_right(times, lo_cut, i)
        if best_at is None:
            return None
        tier, q, i, band = best_at
        if take:
            q.remove_at(i)
            policy.on_dispatch(tier, band, now_s - best_t, now_s)
        return Pick(tier.name, self._model_of[id(q)], best_s, best_t, band, now_s - best_t, best_r)


_At = tuple[TierSpec, FairLane, Tenant, int, int]
"""Where a fair-share pick's job is: tier, lane, tenant, index in its queue, band."""


def _instead_of_flood(
    tier: TierSpec,
    lane: FairLane,
    flood: Tenant,
    i: int,
    band: int,
    fair: tuple[Tenant, int] | None,
) -> _At:
    """The job a lane serves when its oldest job is a flood's past the lag: the band-0 candidate
    when it is another tenant's, else the flood's oldest job."""
    if fair is None or fair[0] is flood:
        return (tier, lane, flood, i, band)
    return (tier, lane, fair[0], fair[1], 0)


def band_of(thresholds: tuple[float, ...], enqueued_at_s: float, now_s: float) -> int:
    """The band of a job, computed exactly as :meth:`QueueBook.pick` cuts bands."""
    band = 0
    for h in thresholds:  # ascending, so the first miss ends it
        if enqueued_at_s > now_s - h:
            break
        band += 1
    return band
