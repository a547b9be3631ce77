"""The pull loop of one model worker: lease, decode inputs, generate, hand off, repeat.

Called from the worker's own thread (the Serve replica starts it). The accelerator should
never wait: near the end of a job (its last step, or when the steps left should take less than
``prefetch_lead_s``) a helper thread leases the next one (prefetch), and encoding and upload run
on a CPU thread after ``generate`` returns. Every sampler step sends a heartbeat, which renews
the lease, reports progress and brings back the cancel flag, and the park flag: a model that
can park then stops at that step boundary, its sampler state goes to the result store and the
job back to its queue (``Park``); a lease that carries ``resume_uri`` resumes from that state.

Why near the end and not at the start: a lease taken at the start of a job is held for the
whole job, so an api job that arrives meanwhile waits behind the lower-tier job this worker
already took (a priority inversion of up to one service time, on every busy worker at once).
Pulled in the last seconds, the choice is made with almost everything that arrived in view.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from luma_ray.errors import InvalidRequest, NotFound, StaleLease
from luma_ray.models.interface import (
    PARK,
    GenerationCancelled,
    GenerationParked,
    ParkedStateInvalid,
    StepAnswer,
    can_park,
)
from luma_ray.scheduler.protocol import Assignment
from luma_ray.workers.conditioning import InputUnavailable, build_conditioning
from luma_ray.workers.outcomes import LoopStats, commit, error_reference, tenant_message
from luma_ray.workers.parked import ParkedStates
from luma_ray.workers.ports import LeasePort, ResultSink, Runner, VersionSource
from luma_ray.workers.stages import StageResult

log = logging.getLogger(__name__)

FINISH_MARGIN_S = 2.0
"""Time a leaving worker keeps for encoding and upload after the model's last step."""
PREFETCH_LEAD_S = 2.0
"""Prefetch when the running job's steps left should take less than this (at the latest
before its last step). Keep it above the round trip of a pull to the scheduler."""


class WorkerLoop:
    """Runs jobs one after another on one model; stop it with :meth:`stop`."""

    def __init__(
        self,
        scheduler: LeasePort,
        model: Runner,
        sink: ResultSink,
        *,
        prefetch: bool = True,
        prefetch_lead_s: float = PREFETCH_LEAD_S,
        pull_wait_s: float = 1.0,
        prefetch_heartbeat_s: float = 5.0,
        clock: Callable[[], float] = time.perf_counter,
        versions: VersionSource | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.model = model
        self.versions = versions
        """Swaps the model between jobs when a new version is promoted (None: never)."""
        self.sink = sink
        self.prefetch = prefetch
        self.prefetch_lead_s = prefetch_lead_s
        """Lease the next job when the running one should end within this (inf: at its
        start, which holds the lease for a whole job and inverts priorities)."""
        self.pull_wait_s = pull_wait_s
        self.prefetch_heartbeat_s = prefetch_heartbeat_s
        self.clock = clock
        self.stats = LoopStats()
        self._stop = threading.Event()
        self._puller = ThreadPoolExecutor(1, thread_name_prefix="luma-prefetch")
        self._uploader = ThreadPoolExecutor(1, thread_name_prefix="luma-upload")
        self.parked = ParkedStates(scheduler, sink)
        self._next: Future[Assignment | None] | None = None
        self._next_beat = 0.0
        self._last_end: float | None = None
        self._leave_by: float | None = None  # set by leave(): stop pulling, go by then
        self._leaving = threading.Event()
        self._job_started = 0.0
        self._steps_before: int | None = None  # steps done before this lease (a resume)
        self._hand_back = False
        self._max_jobs: int | None = None

    def stop(self) -> None:
        """Stop pulling; a running job stops at its next step and is handed back with its
        place and attempt count (the worker is going away, not the job failing)."""
        self._stop.set()

    def leave(self, deadline: float | None) -> None:
        """This worker's node is going away (drain, end of a burst allocation): pull no more
        jobs, hand back a prefetched one, and finish the running job only if it can be done
        by ``deadline`` (on ``clock``; None: no deadline); otherwise stop it at its next step
        and hand it back. A handed-back job keeps its place by age and its attempt count."""
        self._leave_by = deadline
        self._leaving.set()

    @property
    def leaving(self) -> bool:
        return self._leaving.is_set()

    def run(self, max_jobs: int | None = None) -> LoopStats:
        """Loop until stopped (or ``max_jobs`` jobs ran); then finish uploads and return.

        May be called again after it returned (``max_jobs`` counts all jobs started)."""
        self._puller = ThreadPoolExecutor(1, thread_name_prefix="luma-prefetch")
        self._uploader = ThreadPoolExecutor(1, thread_name_prefix="luma-upload")
        self._max_jobs = max_jobs
        try:
            while not self._stop.is_set():
                if max_jobs is not None and self.stats.started >= max_jobs:
                    break
                if getattr(self.model, "dead", False):
                    log.error("the model's gang died; this worker stops pulling")
                    break
                if self._leaving.is_set():
                    log.info("leaving: this worker pulls no more jobs")
                    break
                if self.versions is not None and self.versions.wants_swap():
                    self._release_prefetched()  # it may be pinned to the old version
                    self.model = self.versions.swap()
                job = self._take_next()
                if job is None:
                    self._last_end = None  # idle for lack of work is not a scheduling gap
                    continue
                self._run_one(job)
        finally:
            self._release_prefetched()
            self._puller.shutdown(wait=True)
            self._uploader.shutdown(wait=True)
        return self.stats

    # ---- one job -----------------------------------------------------------------------

    def _take_next(self) -> Assignment | None:
        if self._next is not None:
            job, self._next = self._next.result(), None
            if job is not None:
                return job
        return self.scheduler.pull(self.pull_wait_s)

    def _run_one(self, job: Assignment) -> None:
        self.stats.started += 1
        start = self._job_started = self.clock()
        if self.prefetch_lead_s == math.inf:
            self._prefetch(job)
        self.stats.current, self._hand_back, self._steps_before = job.job_id, False, None
        version = getattr(self.model, "version", None)
        resume = self.parked.state_for(job, self.model, version)
        if self._last_end is not None:
            self.stats.gaps_s.append(start - self._last_end)
        try:
            frames = self._generate(job, resume)
        except GenerationParked as parked:
            self._last_end = self.clock()
            self._park(job, parked, version)
            return
        except GenerationCancelled as stop:
            self._last_end = self.clock()
            if self._hand_back:
                self._give_back(job, stop.step, stop.total)
                return
            self.stats.cancelled += 1
            self.stats.stopped_at[job.job_id] = (stop.step, stop.total)
            self.parked.drop(job)  # cancelled or deleted: nobody resumes it
            log.info("job %s cancelled at step %d of %d", job.job_id, stop.step, stop.total)
            return
        except InvalidRequest as err:
            self._last_end = self.clock()
            self._report_failure(job, "invalid_request", str(err), retryable=False)
            return
        except InputUnavailable as err:  # gone or undecodable: another attempt cannot help
            self._last_end = self.clock()
            self._report_failure(job, "input_unavailable", str(err), retryable=False)
            return
        except Exception:  # a model crash: let another attempt try
            self._last_end = self.clock()
            ref = error_reference(job)
            log.exception("job %s: generate failed (ref %s)", job.job_id, ref)
            self._report_failure(job, "model_error", tenant_message("the model failed", ref), True)
            return
        self._last_end = self.clock()
        self.stats.generated[job.job_id] = self.stats.generated.get(job.job_id, 0) + 1
        if self._pulls_with_the_result(frames):
            self._next = self._uploader.submit(self._finish, job, frames, version, True)
        else:
            self._uploader.submit(self._finish, job, frames, version)

    def _generate(self, job: Assignment, resume: bytes | None) -> object:
        began = self.clock()

        def on_step(step: int, total: int) -> StepAnswer:
            called = self.clock()
            try:
                return self._on_step(job, step, total)
            finally:
                self.stats.step_calls_s += self.clock() - called

        try:
            conditioning = build_conditioning(job.request, lambda key: self.sink.load_input(key))
            extra = {} if conditioning is None else {"conditioning": conditioning}
            if resume is not None:
                try:
                    return self.model.generate(job.request, on_step, resume=resume, **extra)  # type: ignore[call-arg]
                except ParkedStateInvalid as err:
                    log.warning("job %s: cannot resume (%s); starting over", job.job_id, err)
                    self._steps_before = None
            stage = getattr(self.model, "run_stage", None)  # a pipeline stage's runner
            return (
                stage(job, on_step) if stage else self.model.generate(job.request, on_step, **extra)
            )
        finally:
            self.stats.current = None
            self.stats.busy_s += self.clock() - began

    def _park(self, job: Assignment, parked: GenerationParked, version: str | None) -> None:
        self.stats.parked.setdefault(job.job_id, []).append(parked.step)
        outcome = self.parked.park(job, parked, version)
        if outcome == "unstored":
            self._give_back(job, parked.step, parked.total)
        elif outcome == "stale":
            self.stats.stale += 1

    def _give_back(self, job: Assignment, step: int, total: int) -> None:
        self.stats.handed_back.append(job.job_id)
        log.info("job %s handed back at step %d of %d", job.job_id, step, total)
        try:
            self.scheduler.release(job)
        except StaleLease:
            pass  # lapsed meanwhile: it is queued already
        except Exception:
            log.exception("job %s: could not hand back; the lease will expire", job.job_id)

    def _prefetch(self, job: Assignment) -> None:
        """Lease the next job on the helper thread while ``job`` computes."""
        if not self.prefetch or self._next is not None or self._leaving.is_set():
            return
        self._next = self._puller.submit(self.scheduler.pull, self.pull_wait_s)
        self._next_beat = self.clock() + min(self.prefetch_heartbeat_s, job.lease_ttl_s / 3)

    def _per_step_s(self, step: int) -> float:
        """Time per step of this lease so far (a resumed job counts only its own steps)."""
        if self._steps_before is None:
            self._steps_before = step - 1  # the first step this lease ran
        return (self.clock() - self._job_started) / max(step - self._steps_before, 1)

    def _near_the_end(self, step: int, total: int) -> bool:
        """One step left, or the steps left should take less than ``prefetch_lead_s``."""
        per_step = self._per_step_s(step)
        return step >= total - 1 or per_step * (total - step) <= self.prefetch_lead_s

    def _must_stop_to_leave(self, step: int, total: int) -> bool:
        """Leaving with a deadline, and the rest of this job would not be done by then."""
        if not self._leaving.is_set() or self._leave_by is None:
            return False
        now = self.clock()
        return now + self._per_step_s(step) * (total - step) + FINISH_MARGIN_S > self._leave_by

    def _on_step(self, job: Assignment, step: int, total: int) -> StepAnswer:
        """Heartbeat with progress; False stops the model at this step (cancellation), PARK
        parks it (the scheduler asked, and the model can)."""
        if self._steps_before is None:
            self._per_step_s(step)  # note where this lease started
            if job.resume_uri is not None and step > 1:
                self.stats.resumed[job.job_id] = step
        if self._stop.is_set() or self._must_stop_to_leave(step, total):
            # Handed back, not parked: a park writes the sampler state, and a leaving node may
            # not live long enough for that (the drain deadline is often seconds).
            self._hand_back = True
            return False
        park = False
        try:
            reply = self.scheduler.heartbeat(job, step, total, "running")
            cancelled, park = reply.cancel, reply.park
        except StaleLease:
            log.warning("job %s: lease lost during step %d; stopping", job.job_id, step)
            return False
        except NotFound:  # deleted by its owner (a restarted scheduler still knows its jobs)
            log.info("job %s: deleted during step %d; stopping", job.job_id, step)
            return False
        except Exception:  # scheduler restarting: keep computing, the lease survives
            log.warning("job %s: heartbeat failed; continuing", job.job_id, exc_info=True)
            cancelled = False
        if self._next is None and self._near_the_end(step, total):
            self._prefetch(job)
        self._keep_prefetched_alive()
        if cancelled:
            return False
        return PARK if park and can_park(self.model) else True

    def _keep_prefetched_alive(self) -> None:
        nxt = self._next
        if nxt is None or not nxt.done() or self.clock() < self._next_beat:
            return
        held = nxt.result()
        if held is None:
            return
        # Beat three times per lease period at least, so a slow job never costs the lease.
        self._next_beat = self.clock() + min(self.prefetch_heartbeat_s, held.lease_ttl_s / 3)
        try:
            if self.scheduler.heartbeat(held, 0, 0, "prefetched").cancel:
                self._next = None  # cancelled while waiting: drop it
        except (StaleLease, NotFound):
            self._next = None  # requeued meanwhile (another worker runs it), or deleted
        except Exception:
            log.warning("job %s: prefetched lease heartbeat failed", held.job_id)

    def _pulls_with_the_result(self, frames: object) -> bool:
        """No lease in hand for the next job (no prefetch, or it found nothing) and the loop
        goes on: the result's commit leases the next job too (``CompleteAndPull``, one call
        instead of a complete and a pull). The next job then starts once the result is
        stored; with prefetch (the default) a lease is in hand and the commit goes alone."""
        if self._leaving.is_set() or self._stop.is_set() or self._last_job():
            return False
        if self.versions is not None and self.versions.wants_swap():
            return False  # the next lease may be pinned to the version being swapped out
        if isinstance(frames, StageResult) and frames.rejected is not None:
            return False  # a QA rejection is a Reject, not a Complete
        nxt = self._next
        if nxt is None:
            return True
        if not nxt.done() or nxt.exception() is not None or nxt.result() is not None:
            return False
        self._next = None  # the prefetch found nothing: pull with the commit instead
        return True

    def _last_job(self) -> bool:
        return self._max_jobs is not None and self.stats.started >= self._max_jobs

    def _finish(
        self, job: Assignment, frames: object, version: str | None, pull: bool = False
    ) -> Assignment | None:
        """Encode, upload and commit on the CPU thread, off the model's critical path. With
        ``pull`` the commit also leases the loop's next job (``CompleteAndPull``): returns it
        (None: nothing fits now, or the commit failed; the loop then pulls on its own)."""
        try:
            uris = self.sink.store(job, frames)  # type: ignore[arg-type]
            wait_s = self.pull_wait_s if pull else None
            refused, nxt = commit(self.scheduler, job, uris, frames, version, wait_s)
        except Exception:
            ref = error_reference(job)
            log.exception("job %s: storing the result failed (ref %s)", job.job_id, ref)
            message = tenant_message("storing the result failed", ref)
            self._report_failure(job, "store_error", message, True)
            return None
        if refused is not None:
            self.stats.stale += 1
            log.warning("job %s: result refused (%s); deleting it", job.job_id, refused)
            self._discard(job)
        else:
            self.stats.succeeded += 1
            self.parked.drop(job)
        return nxt

    def _discard(self, job: Assignment) -> None:
        try:
            self.sink.discard(job)
        except Exception:
            log.exception("job %s: could not delete its refused result", job.job_id)

    def _report_failure(self, job: Assignment, code: str, message: str, retryable: bool) -> None:
        self.stats.failed += 1
        if not retryable:
            self.parked.drop(job)  # it ends here; a retry would resume from the state
        try:
            self.scheduler.fail(job, code, message, retryable)
        except StaleLease:
            self.stats.stale += 1
        except Exception:
            log.exception("job %s: could not report failure; the lease will expire", job.job_id)

    def _release_prefetched(self) -> None:
        """Give a prefetched lease back (stopping, or swapping versions) so another worker
        takes it at once; the job keeps its place and its attempt count."""
        nxt, self._next = self._next, None
        if nxt is None:
            return
        held = nxt.result()
        if held is None:
            return
        try:
            self.scheduler.release(held)
        except StaleLease:
            pass  # lapsed meanwhile: it is back in the queue already
        except Exception:
            log.exception("job %s: could not hand back; the lease will expire", held.job_id)
