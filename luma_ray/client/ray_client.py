"""The Ray-native client for notebooks and scripts: ``luma_ray.connect()``.

It joins a running luma_ray cluster (or starts a local one when none runs), makes sure the
scheduler and the worker pools are up, and submits through the scheduler actor. Errors come
back as luma_ray's own (``InvalidRequest``, ``NotFound``, ``BackPressure``), not Ray's.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import ray

from luma_ray.client.progress import JobProgress
from luma_ray.config import RuntimeConfig, default_data_dir
from luma_ray.errors import InvalidRequest, NotFound
from luma_ray.notify.targets import validate_callback_url
from luma_ray.runtime.handle import NAMESPACE, get_scheduler
from luma_ray.scheduler.protocol import (
    CancelJob,
    GetJob,
    JobView,
    ListJobs,
    SchedulerPort,
    SchedulerStats,
    Stats,
    Submit,
    SubmitRequest,
)
from luma_ray.storage import open_store

REMEMBERED_JOBS = 100_000
"""How many jobs submitted for other tenants a client remembers the tenant of."""


class Client:
    """Submit, watch, cancel and download generations through the scheduler.

    ``scheduler`` is the actor's handle (``luma_ray.connect`` makes one), or an in-process
    service in tests; the handle waits out a restarting scheduler, and every call is safe to
    repeat (submits carry an idempotency key). ``tenant`` is whom the client submits and asks
    as; each call takes ``tenant=`` to act for another, and a job submitted for another tenant
    is followed as that tenant without saying so again.
    """

    def __init__(self, scheduler: SchedulerPort, store_uri: str, tenant: str = "default") -> None:
        self.scheduler = scheduler
        self.store_uri = store_uri
        self.tenant = tenant
        self._tenants: dict[str, str] = {}
        """The tenant of each job this client submitted for another tenant than its own."""

    def _tenant_of(self, job_id: str, tenant: str | None) -> str:
        """Whom to ask as: ``tenant`` if given, else the tenant this client submitted the job
        for, else the client's own."""
        return tenant or self._tenants.get(job_id, self.tenant)

    def submit(
        self,
        prompt: str,
        *,
        model: str = "luma-tiny",
        tier: str = "free",
        tenant: str | None = None,
        frames: int | None = None,
        size: str | tuple[int, int] | None = None,
        seed: int | None = None,
        steps: int | None = None,
        negative_prompt: str = "",
        fps: int | None = None,
        callback_url: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Queue one generation; returns its id. Bad parameters raise ``InvalidRequest``.

        ``callback_url`` receives a signed webhook on every state change (the scheduler's
        sender refuses addresses its deployment does not allow); ``metadata`` labels come back
        as given.
        ``frames``, ``size`` (``"64x64"`` or ``(width, height)``), ``fps`` and ``steps`` left out
        take the model's defaults. ``tenant`` submits for another tenant than the client's; the
        client remembers it, so ``get``, ``wait``, ``cancel`` and ``download`` of this id ask
        as that tenant (for its last ``REMEMBERED_JOBS`` such jobs; older ones, or jobs another
        client submitted, need ``tenant=``)."""
        if isinstance(size, tuple):
            size = "x".join(str(side) for side in size)
        if callback_url is not None:  # its form here; the sender checks the address it names
            validate_callback_url(callback_url, allow_private=True)
        owner = tenant or self.tenant
        request = SubmitRequest(
            prompt=prompt,
            model=model,
            tier=tier,
            tenant=owner,
            negative_prompt=negative_prompt,
            frames=frames,
            size=size,
            fps=fps,
            seed=seed,
            steps=steps,
            metadata=tuple(sorted((metadata or {}).items())),
            callback_url=callback_url,
            idempotency_key=f"ray-client-{uuid.uuid4().hex}",
        )
        job_id = self.scheduler.call(Submit(request)).id
        if owner != self.tenant:
            self._tenants[job_id] = owner
            if len(self._tenants) > REMEMBERED_JOBS:
                del self._tenants[next(iter(self._tenants))]  # the oldest
        return job_id

    def get(self, job_id: str, tenant: str | None = None) -> JobView:
        """The job's view; ``NotFound`` if ``tenant`` (see :meth:`submit`) has no such job."""
        return self.scheduler.call(GetJob(job_id, self._tenant_of(job_id, tenant)))

    def list(
        self, state: str | None = None, limit: int = 100, tenant: str | None = None
    ) -> list[JobView]:
        """The jobs of ``tenant`` (default: the client's), newest first."""
        return self.scheduler.call(ListJobs(tenant or self.tenant, state, limit))

    def cancel(self, job_id: str, tenant: str | None = None) -> JobView:
        return self.scheduler.call(CancelJob(job_id, self._tenant_of(job_id, tenant)))

    def stats(self) -> SchedulerStats:
        return self.scheduler.call(Stats())

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        progress: bool | None = None,
        tenant: str | None = None,
    ) -> JobView:
        """Poll until the job is final; returns its view. ``TimeoutError`` after ``timeout``.

        ``progress`` shows a one-line progress bar on stderr; by default only where a
        terminal or a notebook shows one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        with JobProgress(job_id, progress) as bar:
            while True:
                view = self.get(job_id, tenant)
                bar.update(view.state.value, view.progress.step, view.progress.total)
                if view.done:
                    return view
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {job_id} still {view.state.value} after {timeout} s")
                time.sleep(delay)  # polling interval, backing off to 0.5 s
                delay = min(0.5, delay * 1.5)

    def download(
        self, job_id: str, path: str | Path, variant: str = "video", tenant: str | None = None
    ) -> Path:
        """Copy the job's video (or ``variant='thumbnail'``) to ``path``."""
        view = self.get(job_id, tenant)
        if view.state != "succeeded":
            raise InvalidRequest(f"job {job_id} is {view.state.value}; download needs 'succeeded'")
        uri = view.result_uris.get(variant)
        if uri is None:
            known = ", ".join(sorted(view.result_uris))
            raise NotFound(f"job {job_id} has no {variant!r} result; it has: {known}")
        store = open_store(self.store_uri)
        if not uri.startswith(store.uri.rstrip("/") + "/"):
            raise NotFound(f"result {uri} is not in this cluster's store {store.uri}")
        key = uri[len(store.uri.rstrip("/")) + 1 :]
        return store.get_file(key, Path(path))


def connect(
    address: str | None = None,
    *,
    runtime: RuntimeConfig | None = None,
    tenant: str = "default",
    start: bool = True,
    quiet: bool = False,
) -> Client:
    """A client of the luma_ray system on ``address`` (a running local one if None).

    With no running cluster it starts a local one (``ray.init``) and, with ``start``, the
    scheduler and worker pools described by ``runtime`` (default: one ``luma-tiny`` replica,
    state under the user's data directory). To join a cluster started by ``luma-ray up``,
    set ``RAY_AUTH_MODE=token`` in the environment before Python imports Ray.
    """
    runtime = runtime or RuntimeConfig(data_dir=str(default_data_dir(dict(os.environ))))
    if not ray.is_initialized():
        options: dict[str, Any] = {"namespace": NAMESPACE}
        if quiet:
            options.update(log_to_driver=False, logging_level="ERROR")
        if address is not None:
            ray.init(address=address, **options)
        else:
            try:
                ray.init(address="auto", **options)
            except (ConnectionError, RuntimeError):
                ray.init(**options)
    try:
        handle = get_scheduler()
    except ValueError:
        if not start:
            raise NotFound("no luma_ray scheduler is running on this cluster") from None
        from luma_ray import launch

        handle = launch.start(runtime)
    return Client(handle, runtime.store, tenant=tenant)
