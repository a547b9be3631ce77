"""The dispatch simulator's event loop: worker slots pulling from one scheduler core.

The model of a worker follows ``WorkerLoop``: one job computes at a time; ``prefetch_lead_s``
before a job ends (at its start if that is None, or the job is shorter), the worker pulls its
next one (prefetch), and that pull waits at the scheduler for up to ``prefetch_poll_s`` (the
long poll) before the worker gives up until its job ends. A worker
with nothing to compute pulls until it gets a job. Waiting pulls are served, oldest first,
whenever the scheduler's state changes (an arrival or a completion), as the actor wakes its
long polls. A leased job is ready on the worker ``pull_latency_s`` after the scheduler leased
it; a completion reaches the scheduler at once (upload time is not modelled).

:class:`Replay` keeps the per-job and per-slot state the report reads afterwards
(:func:`~luma_ray.sim.dispatch_report.report`). Pure: no Ray, no clock; time is data.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

from luma_ray.config import SchedulerConfig
from luma_ray.jobs import GenerationRequest, Job, JobId, TenantId, WorkerId
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.sim.dispatch_cluster import ClusterSpec
from luma_ray.sim.traces.reader import Trace

_INF = math.inf
_FINISH, _READY, _PREFETCH = 0, 1, 2  # event kinds, handled in this order at equal times
_BUSY, _TRANSIT, _EMPTY = 0, 1, 2  # slot states: computing, a leased job on its way, nothing

Observer = Callable[[float, SchedulerCore], None]


class Replay:
    """The event loop's state: one instance per run."""

    def __init__(
        self,
        trace: Trace,
        clusters: Sequence[ClusterSpec],
        config: SchedulerConfig,
        prefetch_poll_s: float,
        prefetch_lead_s: float | None = None,
    ) -> None:
        self.trace, self.clusters, self.poll_s = trace, list(clusters), prefetch_poll_s
        self.lead_s = prefetch_lead_s
        self.sched = SchedulerCore(config)
        self.models = sorted(set(trace.model))
        n = len(trace)
        self.lease_step: list[float] = [_INF] * n
        self.start_step: list[float] = [_INF] * n
        self.step = 0  # counts leases and starts, to order those that share a time
        self.start_s = [math.nan] * n
        self.ran_on = [-1] * n
        self.token = [0] * n
        self.cluster_of = [c for c, spec in enumerate(clusters) for _ in range(spec.slots)]
        self.worker_id = [
            WorkerId(f"{clusters[c].name}-{w}") for w, c in enumerate(self.cluster_of)
        ]
        slots = len(self.cluster_of)
        self.running = [-1] * slots
        self.held = [-1] * slots
        self.held_ready = [_INF] * slots
        self.poll_until = [_INF] * slots
        self.state = [_EMPTY] * slots
        self.count = [[0, 0, spec.slots] for spec in clusters]  # per cluster, per state
        self.pullers: list[OrderedDict[int, int]] = [OrderedDict() for _ in clusters]
        """Per cluster, the slots whose pull waits at the scheduler, oldest first, each with
        a stamp that orders pulls across clusters."""
        self.stamp = 0
        self.blocked: set[int] = set()
        for w in range(slots):
            self._pull_from(w)
        self.events: list[tuple[float, int, int, int]] = []
        self.queued = 0
        self.now = 0.0
        self.idle_limit_s = [0.0] * len(clusters)
        self.idle_latency_s = [0.0] * len(clusters)
        self.idle_no_work_s = 0.0
        self.idle_odd_s = 0.0
        self.busy_s = 0.0
        self.max_in_flight = [0] * len(clusters)

    # ---- the loop ----------------------------------------------------------------------

    def run(self, observer: Observer | None) -> None:
        arrival, n, i, events = self.trace.arrival_s, len(self.trace), 0, self.events
        while True:
            now = min(events[0][0] if events else _INF, arrival[i] if i < n else _INF)
            if now == _INF:
                return
            self._account(now)
            while events and events[0][0] <= now:
                _, kind, w, j = heapq.heappop(events)
                if kind == _FINISH:
                    self._finish(w, j)
                elif kind == _PREFETCH:
                    if self.running[w] == j and self.held[w] < 0:
                        self._prefetch(w)
                elif self.running[w] < 0 and self.held[w] == j:
                    self._start(w)  # the leased job arrived on an idle slot
            while i < n and arrival[i] <= now:
                self._submit(i)
                i += 1
            self._serve_pulls()
            for c, spec in enumerate(self.clusters):
                self.max_in_flight[c] = max(self.max_in_flight[c], self.sched.in_flight[spec.name])
            if observer is not None:
                observer(now, self.sched)

    def _account(self, now: float) -> None:
        """Add the slot-seconds since the last event to their buckets."""
        dt, self.now = now - self.now, now
        if dt <= 0:
            return
        for c, spec in enumerate(self.clusters):
            busy, transit, empty = self.count[c]
            self.busy_s += busy * dt
            self.idle_latency_s[c] += transit * dt
            if not empty:
                continue
            if not self.queued:
                self.idle_no_work_s += empty * dt
            elif self._at_limit(spec):
                self.idle_limit_s[c] += empty * dt
            else:
                self.idle_odd_s += empty * dt

    def _at_limit(self, spec: ClusterSpec) -> bool:
        limit = self.sched.dispatch_limit(spec.name)
        return limit is not None and self.sched.in_flight[spec.name] >= limit

    # ---- what happens to a job ---------------------------------------------------------

    def _submit(self, i: int) -> None:
        t, now = self.trace, self.now
        tenant, params = TenantId(t.tenant[i]), GenerationRequest(prompt="")
        job = Job(JobId(str(i)), tenant, t.tier[i], t.model[i], params, now, t.arrival_s[i])
        self.sched.submit(job, now)
        self.queued += 1

    def _serve_pulls(self) -> None:
        """Answer waiting pulls, oldest first, until the queue empties. A pull refused with
        jobs queued means the cluster is at its limit: its other pulls are not asked, in this
        round nor later until one of its jobs completes (the only way its count drops here)."""
        refused = set(self.blocked)
        while self.queued:
            heads = [
                (next(iter(fifo.values())), c)
                for c, fifo in enumerate(self.pullers)
                if fifo and c not in refused
            ]
            if not heads:
                return
            c = min(heads)[1]
            fifo, spec = self.pullers[c], self.clusters[c]
            w = next(iter(fifo))
            if self.running[w] >= 0 and self.poll_until[w] < self.now:
                del fifo[w]  # the prefetch's long poll ran out; it pulls again at job end
                continue
            d = self.sched.pull(self.worker_id[w], spec.name, self.models, self.now)
            if d is None:
                refused.add(c)
                if self._at_limit(spec):  # not a tenant cap, which any completion may lift
                    self.blocked.add(c)
                continue
            j = int(d.job_id)
            del fifo[w]
            self.queued -= 1
            self.lease_step[j], self.token[j], self.step = self.step, d.token, self.step + 1
            self.held[w], self.held_ready[w] = j, self.now + spec.pull_latency_s
            heapq.heappush(self.events, (self.held_ready[w], _READY, w, j))
            if self.running[w] < 0:
                self._set_state(w, _TRANSIT)

    def _pull_from(self, w: int) -> None:
        """Slot ``w`` starts pulling; a pull already waiting keeps its place in line."""
        fifo = self.pullers[self.cluster_of[w]]
        if w not in fifo:
            fifo[w], self.stamp = self.stamp, self.stamp + 1

    def _start(self, w: int) -> None:
        """Start the held job on slot ``w``; send the prefetch pull now or ``lead_s`` before
        the job ends."""
        j, self.held[w], self.held_ready[w] = self.held[w], -1, _INF
        self.running[w], self.start_s[j], self.ran_on[j] = j, self.now, self.cluster_of[w]
        self.start_step[j], self.step = self.step, self.step + 1
        self.sched.heartbeat(JobId(str(j)), self.token[j], self.now)
        end = self.now + self.trace.service_s[j]
        heapq.heappush(self.events, (end, _FINISH, w, j))
        self._set_state(w, _BUSY)
        if self.lead_s is not None and end - self.lead_s > self.now:
            heapq.heappush(self.events, (end - self.lead_s, _PREFETCH, w, j))
            self.poll_until[w] = _INF
        else:
            self._prefetch(w)

    def _prefetch(self, w: int) -> None:
        """Busy slot ``w`` pulls its next job; the pull waits at most ``poll_s``."""
        self.poll_until[w] = self.now + self.poll_s
        self._pull_from(w)

    def _finish(self, w: int, j: int) -> None:
        self.sched.complete(JobId(str(j)), self.token[j], self.now, {})
        self.blocked.discard(self.cluster_of[w])
        self.running[w] = -1
        if self.held[w] >= 0 and self.held_ready[w] <= self.now:
            self._start(w)
        elif self.held[w] >= 0:
            self._set_state(w, _TRANSIT)
        else:
            self._set_state(w, _EMPTY)
            if self.poll_until[w] < self.now:  # the prefetch's poll ran out: a new pull
                self.pullers[self.cluster_of[w]].pop(w, None)
            self.poll_until[w] = _INF  # an idle worker pulls until it gets a job
            self._pull_from(w)

    def _set_state(self, w: int, state: int) -> None:
        counts = self.count[self.cluster_of[w]]
        counts[self.state[w]] -= 1
        counts[state] += 1
        self.state[w] = state
