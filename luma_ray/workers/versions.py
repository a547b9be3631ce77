"""Which model version a worker runs, and the swap to a newly promoted one.

Who calls this: the Serve replica (``deployment.py``) builds a :class:`VersionManager` and
hands it to the pull loop, which asks :meth:`wants_swap` between jobs and calls :meth:`swap`
when it says yes. A watcher thread (``watch``) polls ``active.yaml`` every ``watch_interval_s``
and downloads a new version into the node's cache before the worker asks to swap, so the time
a worker is out of service is load plus warm-up only.

A swap: ask the scheduler for a slot (at most ``max_unavailable`` of the pool at once), close
the old model (its accelerators are needed), start the new one and warm it up. If that fails,
start the old one again, tell the scheduler (which halts the rollout of that version), and
never try that version again. No Ray here: the scheduler, the repository, the cache and the
model launcher come in as ports, so unit tests drive it with fakes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from luma_ray.models.manifest import Manifest
from luma_ray.workers.host import VersionLoadError  # host.py imports no Ray at load time
from luma_ray.workers.ports import Runner

log = logging.getLogger(__name__)

RETRY_ASK_S = 1.0
"""After a ``wait`` verdict, ask the scheduler again no sooner than this."""


class RolloutPort(Protocol):
    """The scheduler as a swapping worker sees it (``SchedulerLeases`` implements it)."""

    def request_swap(self, model: str, target: str, pool_size: int, max_unavailable: str) -> str:
        """``go``, ``wait`` or ``halted``."""

    def finish_swap(self, model: str, target: str, error: str | None) -> None: ...

    def halted_versions(self, model: str) -> list[str]:
        """Versions whose rollout was halted by a failure (a starting worker skips them)."""


class RepositoryPort(Protocol):
    def active(self, name: str) -> object:
        """An ``ActivePointer`` (``.active``, ``.previous``, ``.max_unavailable``)."""

    def manifest(self, name: str, version: str) -> Manifest: ...


class CachePort(Protocol):
    def fetch(self, name: str, version: str) -> Path: ...


class Loaded(Protocol):
    """A model version running somewhere (its own process, for isolation)."""

    @property
    def model(self) -> Runner: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...


Launcher = Callable[[Manifest, Path], Loaded]
"""Start a version from its manifest and verified local folder; raises if it cannot load."""


@dataclass
class Current:
    version: str
    loaded: Loaded


class VersionManager:
    """Keeps one version of one model loaded and swaps it when ``active.yaml`` changes."""

    def __init__(
        self,
        model: str,
        repository: RepositoryPort,
        cache: CachePort,
        launcher: Launcher,
        rollout: RolloutPort,
        *,
        pool_size: int,
        watch_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.repository = repository
        self.cache = cache
        self.launcher = launcher
        self.rollout = rollout
        self.pool_size = pool_size
        self.watch_interval_s = watch_interval_s
        self.clock = clock
        self.current: Current | None = None
        self.failed: dict[str, str] = {}
        """Versions this worker will not try again, with the reason."""
        self.loads: list[tuple[str, str]] = []
        """(version, "ok" | "failed") for every load this worker tried, oldest first."""
        self._target: str | None = None
        self._max_unavailable = "25%"
        self._prepared: set[str] = set()  # versions downloaded and verified on this node
        self._next_ask = 0.0
        self._stop = threading.Event()

    # -- start ---------------------------------------------------------------------------

    def start(self) -> Runner:
        """Load the active version (or, if it fails, the previous one); the first model."""
        pointer = self.repository.active(self.model)
        active = getattr(pointer, "active", None)
        previous = getattr(pointer, "previous", None)
        if active is None:
            raise RuntimeError(
                f"model {self.model} has no active version; publish and promote one "
                f"(luma-ray models publish/promote {self.model} ...)"
            )
        self._target = active
        self._max_unavailable = str(getattr(pointer, "max_unavailable", "25%"))
        errors = []
        halted = set(self.rollout.halted_versions(self.model))
        for version in [v for v in (active, previous) if v]:
            if version in halted and version != previous:
                errors.append(f"{version}: its rollout was halted")
                self.failed[version] = "rollout halted after a failure on another worker"
                continue
            try:
                self.current = Current(version, self._launch(version))
                if version != active and active not in halted:
                    self.rollout.finish_swap(self.model, active, "; ".join(errors))
                log.info("model %s: serving version %s", self.model, version)
                return self.current.loaded.model
            except Exception as err:
                errors.append(f"{version}: {_describe(err)}")
                self.failed[version] = _describe(err)
                log.exception("model %s: version %s failed to load", self.model, version)
        raise RuntimeError(f"model {self.model}: no version loads ({'; '.join(errors)})")

    @property
    def version(self) -> str | None:
        return self.current.version if self.current else None

    # -- watching ------------------------------------------------------------------------

    def watch(self) -> None:
        """Poll ``active.yaml`` until :meth:`stop`; run on its own thread."""
        while not self._stop.wait(self.watch_interval_s):
            self.poll()

    def poll(self) -> None:
        """Read the pointer once; download a new target so the swap itself is short."""
        try:
            pointer = self.repository.active(self.model)
        except Exception:
            log.warning("model %s: cannot read active.yaml; will retry", self.model, exc_info=True)
            return
        target = getattr(pointer, "active", None)
        self._max_unavailable = str(getattr(pointer, "max_unavailable", "25%"))
        if target is None or target == self._target:
            return
        log.info("model %s: active version is now %s", self.model, target)
        self._target = target
        if target in self.failed or target in self._prepared:
            return
        try:
            self.cache.fetch(self.model, target)
            self._prepared.add(target)
        except Exception as err:  # a corrupt or missing store copy: never load it
            reason = f"download failed: {_describe(err)}"
            log.error("model %s: version %s %s", self.model, target, reason)
            self.failed[target] = reason
            self.rollout.finish_swap(self.model, target, reason)

    def stop(self) -> None:
        self._stop.set()

    # -- swapping ------------------------------------------------------------------------

    def wants_swap(self) -> bool:
        """Whether the loop should come to :meth:`swap` before its next job (cheap)."""
        target = self._target
        return (
            target is not None
            and target != self.version
            and target not in self.failed
            and self.clock() >= self._next_ask
        )

    def swap(self) -> Runner:
        """Swap to the target version if the scheduler allows it now; return the model to run.

        Called by the loop between jobs, with no lease held. On any failure the old version
        runs again and the scheduler is told why.
        """
        target = self._target
        assert self.current is not None
        if target is None or target == self.current.version:
            return self.current.loaded.model
        verdict = self.rollout.request_swap(
            self.model, target, self.pool_size, self._max_unavailable
        )
        if verdict != "go":
            if verdict == "halted":
                self.failed[target] = "rollout halted after a failure on another worker"
            self._next_ask = self.clock() + RETRY_ASK_S
            return self.current.loaded.model
        old = self.current
        log.info("model %s: swapping %s -> %s", self.model, old.version, target)
        old.loaded.close()
        try:
            loaded = self._launch(target)
        except Exception as err:
            reason = _describe(err)
            log.error(
                "model %s: version %s failed (%s); back to %s",
                self.model,
                target,
                reason,
                old.version,
            )
            self.failed[target] = reason
            self.current = Current(old.version, self._launch(old.version))
            self.rollout.finish_swap(self.model, target, reason)
            return self.current.loaded.model
        self.current = Current(target, loaded)
        self.rollout.finish_swap(self.model, target, None)
        log.info("model %s: now serving %s", self.model, target)
        return loaded.model

    def close(self) -> None:
        self.stop()
        if self.current is not None:
            self.current.loaded.close()

    def _launch(self, version: str) -> Loaded:
        """Fetch (verified), start and warm up one version; closes it again if warm-up fails."""
        try:
            folder = self.cache.fetch(self.model, version)
            manifest = self.repository.manifest(self.model, version)
            loaded = self.launcher(manifest, folder)
            try:
                loaded.warmup()
            except Exception:
                loaded.close()
                raise
        except Exception:
            self.loads.append((version, "failed"))
            raise
        self.loads.append((version, "ok"))
        return loaded


def _describe(err: BaseException) -> str:
    """A one-line reason for status: the error type and the first line of its message."""
    cause = getattr(err, "cause", None)  # Ray wraps a remote error; show the original
    if isinstance(cause, BaseException):
        err = cause
    if isinstance(err, VersionLoadError):  # already "Type: message" from the host
        return str(err)[:300]
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}"[:300]
