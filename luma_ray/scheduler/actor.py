"""The scheduler as a Ray actor: a thin async shell around :class:`SchedulerService`.

One named, detached actor (``luma-scheduler`` in namespace ``luma_ray``) that Ray restarts if
it dies; the restarted actor rebuilds its state from the journal. It adds what needs an event
loop: pulls that wait briefly for work, and a timer that requeues lapsed leases. All methods
run on the actor's one event loop, so the service is never entered by two calls at once.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray

from luma_ray.config import parse_config
from luma_ray.jobs import Job
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.decisions import HeartbeatReply
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.service import Assignment, SchedulerService, SubmitRequest

log = logging.getLogger(__name__)

SCHEDULER_NAME = "luma-scheduler"
NAMESPACE = "luma_ray"
MAX_PULL_WAIT_S = 30.0
ACTIVE_CACHE_S = 2.0


class SchedulerActor:
    """Constructed by Ray from plain arguments, so a restart rebuilds the same scheduler."""

    def __init__(
        self,
        config: Mapping[str, Any],
        journal_path: str,
        models: Mapping[str, ModelLimits],
        webhook_secret_path: str | None = None,
        allow_private_callbacks: bool = False,
        repository_uri: str | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.repository = None
        if repository_uri is not None:
            from luma_ray.models.repository import ModelRepository
            from luma_ray.storage import open_store

            self.repository = ModelRepository(open_store(repository_uri), time.time)
        self._active_cache: dict[str, tuple[float, str | None]] = {}
        self.service = SchedulerService(
            parse_config(dict(config), "scheduler config"),
            Journal(journal_path),
            models,
            time.time,
            self._active_version if self.repository is not None else None,
            self.repository.rollout if self.repository is not None else None,
        )
        self.webhooks = None
        if webhook_secret_path is not None:
            from luma_ray.api.outbox import WebhookOutbox
            from luma_ray.api.webhooks import WebhookSender

            secret = Path(webhook_secret_path).read_bytes().strip()
            # Next to the journal: events not yet delivered survive a restart, like the jobs.
            outbox = WebhookOutbox(Path(journal_path).with_suffix(".webhooks.sqlite"))
            self.webhooks = WebhookSender(
                secret, allow_private=allow_private_callbacks, outbox=outbox
            )
            self.service.on_change = self._notify
        self._work = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None

    # ---- clients -----------------------------------------------------------------------

    async def submit(self, request: SubmitRequest) -> dict[str, Any]:
        self._start_ticker()
        view = self.service.submit(request)
        self._wake()
        return view

    async def submit_many(
        self, requests: builtins.list[SubmitRequest]
    ) -> builtins.list[dict[str, Any]]:
        self._start_ticker()
        views = self.service.submit_many(requests)
        self._wake()
        return views

    async def cancel(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        return self.service.cancel(job_id, tenant)

    async def get(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        return self.service.get(job_id, tenant)

    async def list(
        self,
        tenant: str | None = None,
        state: str | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "desc",
    ) -> builtins.list[dict[str, Any]]:
        return self.service.list(tenant, state, limit, after, order)

    async def delete(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        return self.service.delete(job_id, tenant)

    async def limits(self) -> dict[str, Any]:
        """Tiers, SLOs and the models' request limits, for ``GET /v1/limits`` and models."""
        return self.service.describe()

    async def stats(self) -> dict[str, Any]:
        return self.service.stats()

    async def ping(self) -> str:
        self._start_ticker()
        return "ok"

    # ---- workers -----------------------------------------------------------------------

    async def pull(
        self, worker: str, cluster: str, models: builtins.list[str], wait_s: float = 0.0
    ) -> Assignment | None:
        """Lease a job; with ``wait_s`` > 0, wait up to that long for one to arrive."""
        self._start_ticker()
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_PULL_WAIT_S)
        first_try = True
        while True:
            assignment = self.service.pull(worker, cluster, models, first_try)
            first_try = False
            remaining = deadline - time.monotonic()
            if assignment is not None or remaining <= 0:
                return assignment
            event = self._work
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                return self.service.pull(worker, cluster, models, first_try)

    async def heartbeat(
        self, job_id: str, token: int, step: int = 0, total: int = 0, phase: str = "running"
    ) -> HeartbeatReply:
        return self.service.heartbeat(job_id, token, step, total, phase)

    async def complete(
        self,
        job_id: str,
        token: int,
        result_uris: Mapping[str, str],
        version: str | None = None,
    ) -> dict[str, Any]:
        view = self.service.complete(job_id, token, result_uris, version)
        self._wake()  # a cluster at its dispatch limit may pull again
        return view

    async def fail(
        self, job_id: str, token: int, code: str, message: str, retryable: bool = False
    ) -> dict[str, Any]:
        view = self.service.fail(job_id, token, code, message, retryable)
        self._wake()
        return view

    async def release(self, job_id: str, token: int) -> dict[str, Any]:
        view = self.service.release(job_id, token)
        self._wake()
        return view

    async def request_swap(
        self, worker: str, model: str, target: str, pool_size: int, max_unavailable: str
    ) -> str:
        verdict = self.service.request_swap(worker, model, target, pool_size, max_unavailable)
        if verdict == "go":
            await self._publish_rollout(model)
        return verdict

    async def finish_swap(self, worker: str, model: str, target: str, error: str | None) -> None:
        self.service.finish_swap(worker, model, target, error)
        await self._publish_rollout(model)

    async def queue_view(self) -> dict[str, Any]:
        return self.service.queue_view()

    async def backlog(self, model: str) -> dict[str, float]:
        return self.service.backlog(model)

    async def halted_versions(self, model: str) -> builtins.list[str]:
        return self.service.halted_versions(model)

    async def rollout_status(self, model: str) -> dict[str, Any]:
        return self.service.rollout_status(model)

    async def worker_lost(self, worker: str) -> int:
        n = self.service.worker_lost(worker)
        self._wake()
        return n

    # ---- internals ---------------------------------------------------------------------

    def _active_version(self, model: str) -> str | None:
        """``active.yaml``'s version, read at most every ACTIVE_CACHE_S per model."""
        now = time.monotonic()
        cached = self._active_cache.get(model)
        if cached is not None and now - cached[0] < ACTIVE_CACHE_S:
            return cached[1]
        assert self.repository is not None
        try:
            active = self.repository.active(model).active
        except Exception:  # a store hiccup must not fail a submit that pins a served version
            log.warning("could not read active.yaml of %s", model, exc_info=True)
            active = cached[1] if cached else None
        self._active_cache[model] = (now, active)
        return active

    async def _publish_rollout(self, model: str) -> None:
        """Write the model's rollout status to the repository, for ``luma-ray models status``."""
        if self.repository is None:
            return
        status = self.service.rollout_status(model)
        try:
            await asyncio.to_thread(self.repository.write_rollout, model, status)
        except Exception:
            log.warning("could not write rollout status of %s", model, exc_info=True)

    def _notify(self, job: Job) -> None:
        """Queue a webhook for a job's state change; delivery runs on the sender's thread."""
        from luma_ray.api.callbacks import WebhookEvent

        if self.webhooks is None or not job.callback_url or job.state.value == "leased":
            return
        changed_at = job.history[-1][0] if job.history else job.created_at_s
        self.webhooks.enqueue(
            WebhookEvent(
                event_id=f"{job.id}.{len(job.history)}",
                url=job.callback_url,
                job_id=job.id,
                state=job.state.value,
                payload=self.service.view(job),
                created_at_s=changed_at,
                tenant=job.tenant,
            )
        )

    def _wake(self) -> None:
        """Release every waiting pull; each tries again (new work, or a freed limit)."""
        event, self._work = self._work, asyncio.Event()
        event.set()

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        """Metrics every few seconds (Ray exports them; docs/operations.md lists them)."""
        from luma_ray.metrics import PUBLISH_PERIOD_S, SchedulerMetrics

        metrics = SchedulerMetrics()
        while True:
            try:
                metrics.publish(self.service)
            except Exception:  # metrics must never take the scheduler down
                log.exception("publishing metrics failed")
            await asyncio.sleep(PUBLISH_PERIOD_S)  # a timer, not synchronisation

    async def _tick_forever(self) -> None:
        period = max(0.05, min(5.0, self.service.config.lease_ttl_s / 4))
        while True:
            await asyncio.sleep(period)  # a timer, not synchronisation
            try:
                if self.service.tick():
                    self._wake()
            except Exception:  # keep the timer alive; the next tick retries
                log.exception("lease expiry tick failed")


def scheduler_actor_class() -> Any:
    """The one place ``ray.remote`` is applied to the scheduler."""
    return ray.remote(SchedulerActor)


def start_scheduler(
    config: Mapping[str, Any],
    journal_path: str,
    models: Mapping[str, ModelLimits],
    webhook_secret_path: str | None = None,
    allow_private_callbacks: bool = False,
    repository_uri: str | None = None,
) -> Any:
    """Get the running scheduler actor, or start it (detached, restarted on failure)."""
    return (
        scheduler_actor_class()
        .options(
            name=SCHEDULER_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=0,
            num_cpus=0,
            # On the head node, where its journal file lives.
            resources={"node:__internal_head__": 0.001},
            max_concurrency=1000,
        )
        .remote(
            dict(config),
            journal_path,
            dict(models),
            webhook_secret_path,
            allow_private_callbacks,
            repository_uri,
        )
    )


def get_scheduler() -> Any:
    """The running scheduler actor's handle; raises ValueError if none is running."""
    return ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
