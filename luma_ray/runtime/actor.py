"""The scheduler as a Ray actor: a thin async shell around :class:`SchedulerService`.

One named, detached actor (``luma-scheduler`` in namespace ``luma_ray``) that Ray restarts if
it dies; the restarted actor rebuilds its state from the journal. One that cannot start (a
damaged journal, a wrong config) does not die: it logs why once and answers every call with
that line (``JournalUnavailable`` or ``SchedulerUnavailable``), so that clients and
``luma-ray status`` see it instead of a restart loop. It adds what needs an event
loop: pulls that wait briefly for work, and a timer that requeues lapsed leases. Its one
remote method, ``call``, answers any ``luma_ray.scheduler.protocol`` op, so a new operation
needs nothing here (unless it waits: ``Pull``, ``CompleteAndPull``, ``EventFeed``). Calls run
on the actor's one event loop, so the service is never entered by two at once. Their journal
writes are committed together (``luma_ray.runtime.group_commit``): a call is answered once its
change, and every change it saw, is durable.
``luma_ray.runtime.handle`` is the only code that calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ray

from luma_ray.config import WebhookConfig, parse_config
from luma_ray.errors import (
    ConfigError,
    JournalDamaged,
    JournalUnavailable,
    LumaError,
    SchedulerUnavailable,
    Unavailable,
)
from luma_ray.jobs import JobState, ModelLimits
from luma_ray.models.repository import ModelRepository
from luma_ray.notify.events import WebhookEvent
from luma_ray.notify.outbox import WebhookOutbox
from luma_ray.notify.sender import WebhookSender
from luma_ray.runtime.group_commit import GroupCommit
from luma_ray.runtime.handle import NAMESPACE, SCHEDULER_NAME, SchedulerHandle
from luma_ray.runtime.metrics import PUBLISH_PERIOD_S, SchedulerMetrics
from luma_ray.runtime.retention import Retention
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Assignment,
    CompleteAndPull,
    CompletedAndPulled,
    EventFeed,
    FeedPage,
    JobEvent,
    JobView,
    Op,
    Pull,
)
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import open_store
from luma_ray.wire.assets import (
    DEFAULT_TTL_S,
    S3_PRESIGNED,
    SIGNED,
    AssetSigner,
    Presign,
    asset_links,
)
from luma_ray.wire.dream_machine import API as DREAM_MACHINE
from luma_ray.wire.dream_machine import asset_path as dream_asset_path
from luma_ray.wire.dream_machine import dream_generation
from luma_ray.wire.generation import generation_view

log = logging.getLogger(__name__)

MAX_PULL_WAIT_S = 30.0
ACTIVE_CACHE_S = 2.0


@dataclass(frozen=True)
class ActorSettings:
    """What the actor is built from: plain values, so that Ray rebuilds the same scheduler
    after a restart."""

    config: Mapping[str, Any]
    """The scheduler config (``SchedulerConfig.model_dump()``)."""
    journal_path: str
    models: Mapping[str, ModelLimits]
    webhook_secret_path: str | None = None
    """Master secret that signs webhooks; None sends none."""
    allow_private_callbacks: bool = False
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    """How webhooks are delivered: retry schedule, attempt deadline, per-tenant limits."""
    repository_uri: str | None = None
    """The model repository (pinned versions, rollouts); None: models are built in."""
    store_uri: str | None = None
    """The result store: a job past ``retention_s`` has its ``results/<job id>/`` deleted
    from it before its row leaves the journal. None: only the rows are deleted."""
    asset_secret_path: str | None = None
    """Signs the asset URLs webhooks carry (``luma_ray.wire.assets``); None: none."""
    asset_ttl_s: int = DEFAULT_TTL_S
    public_url: str | None = None
    """The API's public origin; None: webhooks carry asset paths from the API root."""
    asset_urls: str = SIGNED
    """``signed``, or ``s3_presigned``: the result store's own presigned URLs."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables of the actor's process: the store's (``AWS_ENDPOINT_URL_S3``)."""


@dataclass(frozen=True)
class _AssetLinks:
    """The asset URLs a webhook carries, as the API would show them at the event's time."""

    signer: AssetSigner | None = None
    base: str = ""
    presign: Presign | None = None

    @classmethod
    def of(cls, settings: ActorSettings) -> _AssetLinks:
        if settings.asset_secret_path is None:
            return cls()
        secret = Path(settings.asset_secret_path).read_bytes().strip()
        presign = None
        if settings.asset_urls == S3_PRESIGNED and settings.store_uri is not None:
            presign = getattr(open_store(settings.store_uri), "presign_uri", None)
        return cls(AssetSigner(secret, settings.asset_ttl_s), settings.public_url or "", presign)

    def links(self, view: JobView) -> dict[str, str]:
        return asset_links(view, self.signer, time.time(), self.base, self.presign)


class SchedulerActor:
    """The scheduler on the cluster; :func:`start_scheduler` starts the one instance."""

    def __init__(self, settings: ActorSettings) -> None:
        logging.basicConfig(level=logging.INFO)
        self._broken: tuple[type[Unavailable], str] | None = None
        """Why the scheduler could not start (a damaged journal, a bad config): every call
        answers with it. Ray restarting the actor would meet the same file again."""
        self._work = asyncio.Event()
        self._news = asyncio.Event()
        """Set (and replaced) on every job event: wakes the subscribers' long polls."""
        self._ticker: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._commits: GroupCommit | None = None
        """Commits the journal writes of concurrent calls together (None: one at a time)."""
        try:
            self._start(settings)
        except ConfigError as err:
            kind = JournalUnavailable if isinstance(err, JournalDamaged) else SchedulerUnavailable
            self._broken = (kind, f"the scheduler cannot start: {err}")
            log.error("%s", self._broken[1])

    def _start(self, settings: ActorSettings) -> None:
        journal_path = settings.journal_path
        self.repository = None
        if settings.repository_uri is not None:
            self.repository = ModelRepository(open_store(settings.repository_uri), time.time)
        self._active_cache: dict[str, tuple[float, str | None]] = {}
        self.service = SchedulerService(
            parse_config(dict(settings.config), "scheduler config"),
            Journal(journal_path),
            settings.models,
            time.time,
            self._active_version if self.repository is not None else None,
            self.repository.rollout if self.repository is not None else None,
        )
        self.service.on_rollout = self._rollout_moved
        config = self.service.config
        logging.getLogger("luma_ray").setLevel(config.log_level)
        if config.journal_group_window_s is not None:
            self._commits = GroupCommit(
                self.service.journal,
                config.journal_group_window_s,
                config.journal_group_max,
                self._commit_failed,
            )
        self.service.feed.listeners.append(self._announce)
        store_uri = settings.store_uri
        self.retention = Retention(None if store_uri is None else lambda: open_store(store_uri))
        self._assets = _AssetLinks.of(settings)
        self.webhooks = None
        if settings.webhook_secret_path is not None:
            secret = Path(settings.webhook_secret_path).read_bytes().strip()
            # Next to the journal: events not yet delivered survive a restart, like the jobs.
            outbox = WebhookOutbox(Path(journal_path).with_suffix(".webhooks.sqlite"))
            self.webhooks = WebhookSender(
                secret,
                settings.webhooks,
                allow_private=settings.allow_private_callbacks,
                outbox=outbox,
            )
            self.service.on_change = self._notify

    async def call(self, op: Op[Any]) -> Any:
        """Answer one operation (``luma_ray.scheduler.protocol``); the only remote method."""
        if self._broken is not None:
            kind, message = self._broken
            raise kind(message)
        self._start_ticker()
        try:
            answer = await self._answer(op)
        except LumaError:
            await self._durable()  # a refusal may rest on changes not yet durable too
            raise
        await self._durable()
        return answer

    async def _durable(self) -> None:
        """Every change this call made or saw is durable (group commit), or it raises."""
        if self._commits is not None:
            await self._commits.durable()

    async def _answer(self, op: Op[Any]) -> Any:
        if isinstance(op, Pull):
            self.service.calls["Pull"] += 1  # it bypasses service.call
            return await self._pull(op)
        if isinstance(op, CompleteAndPull):
            return await self._complete_and_pull(op)
        if isinstance(op, EventFeed):
            return await self._event_feed(op)
        answer = self.service.call(op)
        if op.wakes_pulls:
            self._wake()
        return answer

    def _commit_failed(self, err: Exception) -> None:
        """A group commit failed: memory is read back from the journal before any other call
        runs (the batch's changes are undone; its callers get ``JournalUnavailable``)."""
        self.service.recovery.stale = True
        with contextlib.suppress(JournalUnavailable):  # still stale: the next call retries
            self.service.recovery.check()

    async def _complete_and_pull(self, op: CompleteAndPull) -> CompletedAndPulled:
        """Commit and lease in one call (the service, one journal write); with nothing to
        lease and ``wait_s`` > 0, wait for work as a ``Pull`` does."""
        answer: CompletedAndPulled = self.service.call(op)
        self._wake()  # the result may have freed a limit, or moved a job to its next stage
        if answer.assignment is not None or op.wait_s <= 0:
            return answer
        pull = Pull(op.worker, op.cluster, op.models, op.wait_s)
        return replace(answer, assignment=await self._pull(pull, first_try=False))

    async def _pull(self, op: Pull, first_try: bool = True) -> Assignment | None:
        """Lease a job; with ``wait_s`` > 0, wait up to that long for one to arrive."""
        deadline = time.monotonic() + min(max(op.wait_s, 0.0), MAX_PULL_WAIT_S)
        while True:
            assignment = self.service.pull(op.worker, op.cluster, op.models, 0.0, first_try)
            first_try = False
            remaining = deadline - time.monotonic()
            if assignment is not None or remaining <= 0:
                return assignment
            try:
                await asyncio.wait_for(self._work.wait(), remaining)
            except asyncio.TimeoutError:
                return self.service.pull(op.worker, op.cluster, op.models, 0.0, first_try)

    async def _event_feed(self, op: EventFeed) -> FeedPage:
        """Job events after a cursor; with none yet, wait up to ``wait_s`` for the next."""
        page: FeedPage = self.service.call(op)
        wait_s = min(max(op.wait_s, 0.0), MAX_PULL_WAIT_S)
        if page.events or page.gap or wait_s <= 0:
            return page
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._news.wait(), wait_s)
        return self.service.event_feed(op.after, op.limit)  # the same call: counted once

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

    def _rollout_moved(self, model: str) -> None:
        """Store the model's rollout status in the repository (for ``luma-ray models status``
        and for halts to survive a restart), off the event loop."""
        if self.repository is None:
            return
        task = asyncio.get_running_loop().create_task(self._publish_rollout(model))
        self._writes.add(task)  # keep a reference until it is done
        task.add_done_callback(self._writes.discard)

    async def _publish_rollout(self, model: str) -> None:
        assert self.repository is not None
        status = self.service.rollout_status(model)
        try:
            await asyncio.to_thread(self.repository.write_rollout, model, status)
        except Exception:
            log.warning("could not write rollout status of %s", model, exc_info=True)

    def _notify(self, event: JobEvent) -> None:
        """Queue a webhook for a job's state change; delivery runs on the sender's threads.

        The payload is the generation as ``GET /v1/generations/{id}`` shows it (API paths,
        never the storage URIs or the tenant of the scheduler's own view)."""
        view = event.view
        if self.webhooks is None or not event.callback_url or view.state is JobState.LEASED:
            return
        dream = view.api == DREAM_MACHINE  # its callbacks post the SDK's Generation itself
        self.webhooks.enqueue(
            WebhookEvent(
                event_id=event.event_id,
                url=event.callback_url,
                job_id=view.id,
                state=view.state.value,
                payload=dream_generation(view, self._assets.links(view), dream_asset_path)
                if dream
                else generation_view(view, assets=self._assets.links(view)),
                created_at_s=event.at_s,
                tenant=view.tenant,
                shape="object" if dream else "event",
            )
        )

    def _announce(self) -> None:
        """A job event was published: the waiting event feeds answer."""
        event, self._news = self._news, asyncio.Event()
        event.set()

    def _wake(self) -> None:
        """Release every waiting pull; each tries again (new work, or a freed limit)."""
        event, self._work = self._work, asyncio.Event()
        event.set()

    def _start_ticker(self) -> None:
        if self._commits is not None:
            self._commits.start()
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        """Metrics every few seconds (Ray exports them; docs/operations.md lists them)."""
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
            try:
                await self.retention.purge(self.service)
            except Exception:  # as above: the next tick retries
                log.exception("deleting jobs past their retention failed")


def scheduler_actor_class() -> Any:
    """The one place ``ray.remote`` is applied to the scheduler."""
    return ray.remote(SchedulerActor)


def start_scheduler(settings: ActorSettings) -> SchedulerHandle:
    """Get the running scheduler actor, or start it (detached, restarted on failure)."""
    actor = (
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
            runtime_env={"env_vars": dict(settings.env)} if settings.env else None,
        )
        .remote(settings)
    )
    return SchedulerHandle(actor)
