"""One model version in its own process: the version's code and requirements, nobody else's.

Who calls this: ``VersionManager`` (through :class:`HostLauncher`) starts a :class:`ModelHost`
actor per loaded version; the pull loop calls ``generate`` on a :class:`HostedModel`, which
forwards it. The actor's runtime_env puts the version's ``code/`` folder (from the node's
verified cache) first on ``PYTHONPATH`` and installs its ``requirements.txt`` with pip, so two
versions whose code shares module names run side by side on one node, and a swap starts a fresh
process. Replicas reserve their resources in a placement group (``launch.pool_application``);
the host is created inside it, so an old host's CPUs or GPUs pass to the new one.

Progress crosses the process boundary in one call per step: the proxy's ``wait_step`` returns
when the host finished a step, the proxy runs the loop's step callback (the heartbeat), and the
next ``wait_step`` carries its answer back. The host waits for that answer before the next
step, as an in-process model would, so a cancel stops the model within one step.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from luma_ray.errors import LumaError
from luma_ray.models.interface import (
    GenerationCancelled,
    GenerationRequest,
    ModelLimits,
    StepCallback,
)
from luma_ray.models.manifest import Manifest

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 600.0
"""Longest a version may take to start, load and warm up before the swap is abandoned."""
STEP_POLL_S = 0.5
ANSWER_WAIT_S = 60.0
"""A host waits this long for the worker's answer to a step before it carries on alone."""


class VersionLoadError(Exception):
    """A version's code or checkpoint failed to load; the message is the model's own error."""


class ModelHost:
    """Runs in its own Ray worker process; constructed by Ray from plain arguments."""

    def __init__(
        self,
        model: str,
        version: str,
        folder: str,
        entrypoint: str,
        params: dict[str, Any],
        torch_threads: int,
    ) -> None:
        import torch

        from luma_ray.models.registry import import_entrypoint

        logging.basicConfig(level=logging.INFO)
        torch.set_num_threads(max(1, torch_threads))
        self.version = version
        self.load_error: str | None = None
        """Why the version did not load (reported by ``describe``; Ray's own error for a failed
        constructor buries the reason in a traceback)."""
        try:
            cls = import_entrypoint(entrypoint)
            self.model = cls(**params)
            self.model.load(Path(folder) / "checkpoints", torch.device("cpu"))
            self.limits: ModelLimits = self.model.limits
        except Exception as err:
            log.exception("host: %s@%s failed to load", model, version)
            self.load_error = f"{type(err).__name__}: {err}"[:500]
            return
        self._cond = threading.Condition()
        self._step = (0, 0)
        self._answered = 0  # the last step whose callback answer arrived
        self._generation = 0  # which generate call the step state belongs to
        self._running = False
        self._cancel = False
        log.info("host: %s@%s loaded from %s (pid %d)", model, version, folder, os.getpid())

    def describe(self) -> dict[str, Any]:
        """What runs here; ``source`` is the file the model class came from (which version's
        code this process imported)."""
        if self.load_error is not None:
            return {"version": self.version, "error": self.load_error}
        return {
            "version": self.version,
            "limits": self.limits,
            "pid": os.getpid(),
            "source": inspect.getsourcefile(type(self.model)),
        }

    def warmup(self) -> None:
        """One smallest generation, so the first real job does not pay for lazy setup."""
        lim = self.limits
        tiny = GenerationRequest(
            "warm-up", frames=1, height=lim.size_multiple, width=lim.size_multiple, steps=1
        )
        self.model.generate(tiny, lambda step, total: True)

    def generate(self, request: GenerationRequest, generation: int) -> Any:
        with self._cond:
            self._step, self._answered, self._running, self._cancel = (0, 0), 0, True, False
            self._generation = generation
            self._cond.notify_all()
        try:
            return self.model.generate(request, self._on_step)
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _on_step(self, step: int, total: int) -> bool:
        with self._cond:
            self._step = (step, total)
            self._cond.notify_all()
            # Wait for the worker's answer; if it never comes (worker gone), carry on.
            self._cond.wait_for(lambda: self._answered >= step or self._cancel, ANSWER_WAIT_S)
            return not self._cancel

    def wait_step(
        self, generation: int, answered: int, go: bool, timeout_s: float
    ) -> tuple[int, int, bool]:
        """Take the answer for step ``answered`` (``go`` False stops the model), then block
        until a later step is done, the generation ends, or ``timeout_s`` passes. Returns
        (step, total, ended) of ``generation``; before it started, (0, 0, False)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._generation == generation, timeout_s):
                return 0, 0, False
            if answered > self._answered:
                self._answered = answered
            if not go:
                self._cancel = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._step[0] > answered or not self._running, timeout_s)
            return self._step[0], self._step[1], not self._running


class HostedModel:
    """The ``VideoModel`` the pull loop runs; forwards to a :class:`ModelHost` actor."""

    def __init__(
        self, handle: Any, name: str, version: str, limits: ModelLimits, source: str | None
    ) -> None:
        self.handle = handle
        self.name = name
        self.version = version
        self.limits = limits
        self.source = source
        self._generations = itertools.count(1)
        self.dead = False

    def load(
        self, checkpoint_dir: Path, device: torch.device, process_group: object | None = None
    ) -> None:
        raise RuntimeError("a hosted model is loaded by its host; start a new host instead")

    def generate(self, request: GenerationRequest, on_step: StepCallback) -> Any:
        generation = next(self._generations)
        ref = self.handle.generate.remote(request, generation)
        seen, go = 0, True
        while True:
            try:
                step, total, done = ray.get(
                    self.handle.wait_step.remote(generation, seen, go, STEP_POLL_S)
                )
            except ray.exceptions.RayActorError:
                self.dead = True
                raise
            if step > seen:
                go = on_step(step, total) and go  # a stop is final
                seen = step
            elif done:
                break
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError:
            self.dead = True  # the replica's health check fails; Serve replaces it
            raise
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, (GenerationCancelled, LumaError)):
                raise cause from None
            raise


class HostLauncher:
    """Starts a version's host actor (``versions.Launcher``); the only Ray calls for it."""

    def __init__(self, num_cpus: float, num_gpus: float, torch_threads: int) -> None:
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.torch_threads = torch_threads

    def __call__(self, manifest: Manifest, folder: Path) -> HostHandle:
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "max_concurrency": 4,  # generate and wait_step at once
            "runtime_env": runtime_env(manifest, folder, os.environ.get("PYTHONPATH")),
        }
        handle: Any = (
            ray.remote(ModelHost)
            .options(**options)
            .remote(
                manifest.model,
                manifest.version,
                str(folder),
                manifest.entrypoint,
                dict(manifest.params),
                self.torch_threads,
            )
        )
        try:
            info = ray.get(handle.describe.remote(), timeout=LOAD_TIMEOUT_S)
        except Exception:
            ray.kill(handle)
            raise
        if "error" in info:
            ray.kill(handle)
            raise VersionLoadError(info["error"])
        model = HostedModel(
            handle, manifest.model, manifest.version, info["limits"], info["source"]
        )
        return HostHandle(handle, model)


class HostHandle:
    """A started host (``versions.Loaded``): its model, warm-up and shutdown."""

    def __init__(self, handle: Any, model: HostedModel) -> None:
        self.handle = handle
        self.model = model

    def warmup(self) -> None:
        ray.get(self.handle.warmup.remote(), timeout=LOAD_TIMEOUT_S)

    def close(self) -> None:
        ray.kill(self.handle, no_restart=True)


def runtime_env(manifest: Manifest, folder: Path, pythonpath: str | None) -> dict[str, Any]:
    """The version's process environment: its code first on the import path, its pip
    requirements installed (Ray builds and caches one virtualenv per requirement set)."""
    env: dict[str, Any] = {
        "env_vars": {"LUMA_MODEL_VERSION": f"{manifest.model}@{manifest.version}"}
    }
    code = folder / "code"
    if code.is_dir():
        paths = [str(code)] + ([pythonpath] if pythonpath else [])
        env["env_vars"]["PYTHONPATH"] = os.pathsep.join(paths)
    if manifest.requirements:
        env["pip"] = list(manifest.requirements)
    return env
