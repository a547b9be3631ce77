"""Fair share inside one (tier, model) queue: per-tenant FIFO sub-queues and virtual time.

A :class:`FairLane` splits one (tier, model) queue by tenant. Each tenant has a time-ordered
:class:`~luma_ray.scheduler.job_queue.JobQueue` and a *virtual time* (VTC-style): every
dispatch of one of its jobs adds ``cost / weight`` to it (the cost is given at push: the
simulator passes the job's service time, the live scheduler ``job_facts.job_cost``; at
dispatch the lane reads it back through ``JobFacts``, from the caller's own records). The
virtual time is the tenant's account in the *tier* (:mod:`.accounts`), shared by the tier's
model lanes: a charge in one lane shows in the others at once. A tenant that gets a queued job
while it has none in the tier is lifted to the least vtime among the tier's tenants with queued
jobs, or, when there are none, to the tier's *floor* (the largest vtime any tenant had when it
last left), so an idle tenant banks no credit. Every charge (in this lane or another of the
tier) and every join of the lane stamps the tenant with a lane-wide counter; among equal vtimes
the older stamp goes first (round robin).

The lane offers two candidates, head-only, for the book's pick (:mod:`.queues`):

- the *fair-share candidate* for band 0 (waits younger than the policy's first threshold,
  ``cut = now - threshold``): among tenants that are not capped and have a job younger than
  ``cut``, the least (vtime, stamp); its oldest such job. A heap of (vtime, stamp, tenant)
  with lazy deletion; a tenant found without a band-0 job is moved to a *dormant* heap keyed
  by its youngest job, and comes back on its next push, or at a pick where the cut has moved
  back before its youngest job (a policy whose thresholds change);
- the *age candidate*: the oldest job of any tenant that is not capped (a heap keyed by each
  tenant's head), which the pick lets compete only in a band >= 1.

With a *lag* (``lag_jobs`` > 0, the default), the band-0 candidate is first the lane's oldest
band-0 job of any tenant (one bisection in a lane-wide time-ordered queue) when its tenant is
uncapped and at most ``lag_jobs`` mean job costs of virtual time ahead of the least-vtime
tenant with queued jobs; only otherwise the least (vtime, stamp) tenant's. So while tenants
stay within the lag of each other the lane serves its savable jobs nearest their deadline
first (which saves the most of them), and a tenant that runs ahead, a flood, waits for the
others.

**A flood is contained.** A tenant *floods* a lane when it holds more than ``flood_share`` of
the lane's queued jobs (0.7 by default) and its vtime is past the lag (:meth:`FairLane.floods`).
When the age candidate is a flood's, the book's pick (:mod:`.queues`) lets the lane compete with
that job's rank (the tail it protects is still the tier's) but serves the band-0 candidate in
its place when that is another tenant's, and never lets the lane's offer go ahead of a heavier
tier's band-0 job. So a flood keeps its tier's share of dispatches, but neither the other
tenants of its tier nor a heavier tier pay for it.

Capped tenants (``max_leased`` reached) are parked: they stay out of both heaps, with no scan,
until :meth:`FairLane.set_capped` unparks them. Stale heap entries are skipped when they
surface and the heaps are rebuilt once they hold several times more entries than tenants, so
every operation costs O(log tenants + log jobs) amortised, however deep the lane.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush

from luma_ray.scheduler.accounts import Accounts
from luma_ray.scheduler.job_facts import JobFacts, KeptFacts
from luma_ray.scheduler.job_queue import JobQueue

_INF = float("inf")
DEFAULT_LAG_JOBS = 1000.0
"""How far (in mean job costs of virtual time) a tenant may run ahead of the least-served one
before fair share, not deadline order, picks its band-0 jobs."""
DEFAULT_FLOOD_SHARE = 0.7
"""The share of a lane's queued jobs past which a tenant that is also past the lag floods it
(1 or more: never)."""


class Tenant:
    """One tenant's share of a lane: its queued jobs, virtual time and flags."""

    __slots__ = ("name", "q", "vtime", "stamp", "fair", "capped")

    def __init__(self, name: str, capped: bool) -> None:
        self.name = name
        self.q = JobQueue()
        self.vtime = 0.0
        self.stamp = 0
        self.fair = False
        """In the fair-share heap (True) or in the dormant heap (False); meaningful only while
        it has queued jobs and is not capped."""
        self.capped = capped


class FairLane:
    """One (tier, model) queue, split by tenant, with virtual-time fair share."""

    def __init__(
        self,
        weight_of: Callable[[str], float],
        lag_jobs: float = DEFAULT_LAG_JOBS,
        facts: JobFacts | None = None,
        flood_share: float = DEFAULT_FLOOD_SHARE,
        accounts: Accounts | None = None,
    ) -> None:
        self.weight_of = weight_of
        self.accounts = Accounts() if accounts is None else accounts
        """The tier's virtual times, shared with its other model lanes (own ones if None)."""
        self.lag_jobs = lag_jobs
        self.flood_share = flood_share
        self.facts: JobFacts = KeptFacts() if facts is None else facts
        self._all = JobQueue()  # every queued job of the lane, by age (the lag candidate)
        self._cost_sum = 0.0
        self._cost_n = 0
        self.tenants: dict[str, Tenant] = {}
        self.live = 0
        self._stamp = 0
        self._fair: list[tuple[float, int, str]] = []  # (vtime, stamp, tenant)
        self._dormant: list[tuple[float, str]] = []  # (-youngest job's time (a bound), tenant)
        self._age: list[tuple[float, int, str]] = []  # (head's enqueue time, head's seq, tenant)
        self._active: list[tuple[float, str]] = []  # (vtime, tenant) of tenants with jobs
        self._capped: set[str] = set()
        self.compactions = 0
        """Heap rebuilds so far (they drop stale entries; memory stays O(tenants + jobs))."""
        self._changes = 0  # bumped by every change of jobs, tenants or caps
        self._fair_memo: tuple[int, float, float, tuple[Tenant, int] | None] | None = None
        self._age_memo: tuple[int, tuple[Tenant, int] | None] | None = None

    def __len__(self) -> int:
        return self.live

    # ---- changes ---------------------------------------------------------------------------

    def push(self, enqueued_at_s: float, seq: int, tenant: str, cost: float, capped: bool) -> None:
        """Queue a job (new or requeued: a requeue keeps its enqueue time and goes back by age).
        ``capped``: the tenant's state when the lane first sees it."""
        self._changes += 1
        rec = self.tenants.get(tenant)
        if rec is None:
            rec = self.tenants[tenant] = Tenant(tenant, capped)
            if capped:
                self._capped.add(tenant)
        q = rec.q
        joined = not q.live
        if joined:
            rec.vtime = self.accounts.join(tenant, self)
            rec.stamp = self._next_stamp()
            heappush(self._active, (rec.vtime, tenant))
            new_head = True
        else:
            i = q.first_live()
            new_head = (enqueued_at_s, seq) < (q.times[i], q.seqs[i])
        q.push(enqueued_at_s, seq)
        self.facts.keep(seq, tenant, cost)
        self._cost_sum += cost
        self._cost_n += 1
        if self.lag_jobs > 0:
            self._all.push(enqueued_at_s, seq)
        self.live += 1
        if rec.capped:
            return
        if joined or not rec.fair:
            rec.fair = True
            heappush(self._fair, (rec.vtime, rec.stamp, tenant))
        if new_head:
            heappush(self._age, (enqueued_at_s, seq, tenant))
        self._bound()

    def take(self, rec: Tenant, i: int) -> None:
        """Dispatch the job at index ``i`` of ``rec``'s queue and charge the tenant for it."""
        self._changes += 1
        q = rec.q
        was_head = i == q.first_live()
        seq = q.seqs[i]
        self._forget(q.times[i], seq)
        q.remove_at(i)
        self.live -= 1
        rec.vtime = self.accounts.charge(
            rec.name, self.facts.cost_of(seq) / self.weight_of(rec.name), self
        )
        self.facts.drop(seq)
        rec.stamp = self._next_stamp()
        if not q.live:
            self.accounts.leave(rec.name, self)
            return
        heappush(self._active, (rec.vtime, rec.name))
        if not rec.capped:
            if rec.fair:
                heappush(self._fair, (rec.vtime, rec.stamp, rec.name))
            if was_head:
                self._push_head(rec)
        self._bound()

    def discard(self, enqueued_at_s: float, seq: int, tenant: str) -> bool:
        """Tombstone a queued job (a cancel); False if it was not queued. No charge."""
        rec = self.tenants.get(tenant)
        if rec is None:
            return False
        q = rec.q
        i = q.find(enqueued_at_s, seq)
        if i is None:
            return False
        self._changes += 1
        was_head = i == q.first_live()
        self._forget(enqueued_at_s, seq)
        q.remove_at(i)
        self.live -= 1
        self.facts.drop(seq)
        if not q.live:
            self.accounts.leave(tenant, self)
        elif was_head and not rec.capped:
            self._push_head(rec)
        return True

    def sync(self, tenant: str, vtime: float) -> None:
        """The tenant was charged in another lane of the tier: its virtual time is now
        ``vtime`` here too, and it is stamped as if charged here (round robin)."""
        rec = self.tenants[tenant]
        self._changes += 1
        rec.vtime = vtime
        rec.stamp = self._next_stamp()
        heappush(self._active, (vtime, tenant))
        if rec.fair and not rec.capped:
            heappush(self._fair, (vtime, rec.stamp, tenant))
        self._bound()

    def set_capped(self, tenant: str, capped: bool) -> None:
        """Park (``capped``) or unpark a tenant; parked tenants offer no candidate."""
        rec = self.tenants.get(tenant)
        if rec is None or rec.capped == capped:
            return
        self._changes += 1
        rec.capped = capped
        if capped:
            self._capped.add(tenant)
            return
        self._capped.discard(tenant)
        if rec.q.live:
            rec.fair = True
            heappush(self._fair, (rec.vtime, rec.stamp, tenant))
            self._push_head(rec)
            self._bound()

    # ---- candidates ------------------------------------------------------------------------

    def fair_candidate(self, cut_s: float) -> tuple[Tenant, int] | None:
        """The band-0 candidate (jobs enqueued after ``cut_s``) and its index in its tenant's
        queue: the lane's oldest such job if its tenant is within the lag, else the
        least-vtime uncapped tenant's oldest such job.

        The answer is kept while the lane is unchanged and ``cut_s`` moves forward without
        passing the jobs it rests on (the lane's oldest band-0 job and the answer's): a later
        cut then gives the same answer, so picks between changes cost a comparison."""
        memo = self._fair_memo
        if memo is not None and memo[0] == self._changes and memo[1] <= cut_s < memo[2]:
            return memo[3]
        found, until = self._fair_candidate(cut_s)
        self._fair_memo = (self._changes, cut_s, until, found)
        return found

    def _fair_candidate(self, cut_s: float) -> tuple[tuple[Tenant, int] | None, float]:
        """The band-0 candidate, and the least enqueue time it rests on (see above)."""
        until = _INF
        if self.lag_jobs > 0:
            j = self._all.first_younger_than(cut_s)
            if j < len(self._all.times):
                until = self._all.times[j]
                found = self._lag_candidate(j)
                if found is not None:
                    return found, until
        dormant = self._dormant
        while dormant and -dormant[0][0] > cut_s:
            _, name = heappop(dormant)
            rec = self.tenants[name]
            if rec.fair or rec.capped or not rec.q.live:
                continue
            youngest = rec.q.newest()
            if youngest > cut_s:
                rec.fair = True
                heappush(self._fair, (rec.vtime, rec.stamp, name))
            else:
                heappush(dormant, (-youngest, name))
        heap = self._fair
        while heap:
            _, stamp, name = heap[0]
            rec = self.tenants[name]
            if rec.fair and not rec.capped and rec.q.live and rec.stamp == stamp:
                q = rec.q
                i = q.first_younger_than(cut_s)
                if i < len(q.times):
                    return (rec, i), min(until, q.times[i])
                rec.fair = False
                heappush(dormant, (-q.times[-1], name))
            heappop(heap)
        return None, until

    def age_candidate(self) -> tuple[Tenant, int] | None:
        """The uncapped tenant whose head is the oldest job, and its head's index (kept while
        the lane is unchanged)."""
        memo = self._age_memo
        if memo is not None and memo[0] == self._changes:
            return memo[1]
        found = self._age_candidate()
        self._age_memo = (self._changes, found)
        return found

    def _age_candidate(self) -> tuple[Tenant, int] | None:
        heap = self._age
        while heap:
            t, seq, name = heap[0]
            rec = self.tenants[name]
            if not rec.capped and rec.q.live:
                q = rec.q
                i = q.first_live()
                if q.seqs[i] == seq and q.times[i] == t:
                    return rec, i
            heappop(heap)
        return None

    def floods(self, rec: Tenant) -> bool:
        """True when ``rec`` holds more than ``flood_share`` of the lane's queued jobs and its
        vtime is past the lag (see the module docstring)."""
        if rec.q.live <= self.flood_share * self.live:
            return False
        return rec.vtime > self._least_active() + self._lag()

    # ---- views -----------------------------------------------------------------------------

    def oldest_s(self) -> float | None:
        """Enqueue time of the oldest queued job of any tenant, capped ones included."""
        found = self.age_candidate()
        best = found[0].q.times[found[1]] if found else _INF
        for name in self._capped:
            q = self.tenants[name].q
            if q.live:
                best = min(best, q.times[q.first_live()])
        return None if best == _INF else best

    def ahead(self, enqueued_at_s: float, seq: int, tenant: str) -> int | None:
        """The tenant's own queued jobs ahead of this one (an upper bound); None if absent."""
        rec = self.tenants.get(tenant)
        if rec is None:
            return None
        i = rec.q.find(enqueued_at_s, seq)
        return None if i is None else max(0, min(i - rec.q.head, rec.q.live - 1))

    # ---- internals -------------------------------------------------------------------------

    def _lag_candidate(self, i: int) -> tuple[Tenant, int] | None:
        """The lane's job at index ``i`` of the lane-wide queue (its oldest band-0 job), if its
        tenant is uncapped and within the lag of the least-served tenant."""
        every = self._all
        t, seq = every.times[i], every.seqs[i]
        rec = self.tenants[self.facts.tenant_of(seq)]
        if rec.capped or rec.vtime > self._least_active() + self._lag():
            return None
        j = rec.q.find(t, seq)
        return None if j is None else (rec, j)

    def _lag(self) -> float:
        """The lag in virtual time: ``lag_jobs`` mean costs of the jobs pushed so far."""
        return self.lag_jobs * self._cost_sum / max(self._cost_n, 1)

    def _forget(self, enqueued_at_s: float, seq: int) -> None:
        """Drop a job that leaves the lane from the lane-wide queue."""
        if self.lag_jobs > 0:
            i = self._all.find(enqueued_at_s, seq)
            if i is not None:
                self._all.remove_at(i)

    def _next_stamp(self) -> int:
        self._stamp += 1
        return self._stamp

    def _least_active(self) -> float:
        """The least vtime of the lane's tenants with queued jobs (the tier's, if none)."""
        heap = self._active
        while heap:
            v, name = heap[0]
            rec = self.tenants[name]
            if rec.q.live and rec.vtime == v:
                return v
            heappop(heap)
        return self.accounts.least_active()

    def _push_head(self, rec: Tenant) -> None:
        q = rec.q
        i = q.first_live()
        heappush(self._age, (q.times[i], q.seqs[i], rec.name))

    def _bound(self) -> None:
        """Rebuild the heaps once stale entries make them several times the tenant count."""
        held = len(self._fair) + len(self._active) + len(self._age) + len(self._dormant)
        if held > 12 * len(self.tenants) + 3072:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heaps from the tenants' state, dropping every stale entry."""
        self.compactions += 1
        live = [r for r in self.tenants.values() if r.q.live]
        self._active = [(r.vtime, r.name) for r in live]
        free = [r for r in live if not r.capped]
        self._fair = [(r.vtime, r.stamp, r.name) for r in free if r.fair]
        self._dormant = [(-r.q.times[-1], r.name) for r in free if not r.fair]
        self._age = []
        for r in free:
            i = r.q.first_live()
            self._age.append((r.q.times[i], r.q.seqs[i], r.name))
        heapify(self._active)
        heapify(self._fair)
        heapify(self._dormant)
        heapify(self._age)
