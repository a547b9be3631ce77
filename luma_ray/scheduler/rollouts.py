"""Rolling version swaps, coordinated by the scheduler: who runs which version, who may swap.

Who calls this: the scheduler service. Workers name their version in every pull (``model@v``
next to ``model``), which :meth:`Rollouts.observe` records. A worker that sees a new version in
``active.yaml`` asks :meth:`request_swap` before it stops serving; at most ``max_unavailable``
workers of a model swap at once. It reports the outcome with :meth:`finish_swap`; a failed
load halts the rollout of that version, so the other workers do not try it (each try costs
capacity) and ``status`` says why.

Pure: no Ray, no I/O, the time is an argument. Not journaled: the scheduler stores each
model's status in the repository (``rollout.yaml``) and, after a restart, :meth:`recall` takes
its halts back, so no worker tries a halted version again. Swap slots in progress are
forgotten (workers finish them and report; unknown reports are accepted).
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from luma_ray.errors import InvalidRequest
from luma_ray.scheduler.reports import Halt, RolloutReport, SwapRecord

log = logging.getLogger(__name__)

SWAP_TIMEOUT_S = 900.0
"""A swap slot lapses this long after it was granted (its worker died mid-swap)."""
WORKER_SEEN_S = 60.0
"""A worker counts as serving its version for this long after its last pull."""
MAX_EVENTS = 100
"""Most recent swaps kept per model for status."""

GO, WAIT, HALTED = "go", "wait", "halted"


@dataclass
class SwapEvent:
    """One swap of one worker, for status (and the rollout tests)."""

    worker: str
    from_version: str | None
    to_version: str
    started_s: float
    finished_s: float | None = None
    error: str | None = None


@dataclass
class _ModelRollout:
    swapping: dict[str, SwapEvent] = field(default_factory=dict)  # worker → its open swap
    halted: dict[str, Halt] = field(default_factory=dict)  # version → why
    events: deque[SwapEvent] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    serving: dict[str, tuple[str, float]] = field(default_factory=dict)  # worker → (v, seen)
    last_seen: dict[str, float] = field(default_factory=dict)  # version → last pull naming it


def validate_max_unavailable(value: str) -> str:
    """``"25%"`` (1-100 %) or a whole count of at least 1; ``InvalidRequest`` otherwise."""
    match = re.fullmatch(r"(\d{1,3})%|(\d{1,6})", str(value).strip())
    share, count = (int(g) if g else None for g in match.groups()) if match else (None, None)
    if (share is None or not 1 <= share <= 100) and (count is None or count < 1):
        raise InvalidRequest(
            f"max_unavailable {value!r} is invalid: use a percentage like '25%' or a count "
            "of at least 1"
        )
    return str(value).strip()


def allowed_unavailable(max_unavailable: str, pool_size: int) -> int:
    """How many of ``pool_size`` workers may swap at once: ``"25%"`` or ``"2"``; at least 1."""
    text = validate_max_unavailable(max_unavailable)
    if text.endswith("%"):
        return max(1, math.floor(pool_size * int(text[:-1]) / 100))
    return int(text)


class Rollouts:
    """Per model: which worker serves which version, open swap slots, halted versions."""

    def __init__(self, stored: Callable[[str], Mapping[str, Any] | None] | None = None) -> None:
        self._models: dict[str, _ModelRollout] = {}
        self._stored = stored
        """The status last stored for a model (``rollout.yaml``), read once per model after a
        start so that halts survive a restart; None: nothing is stored."""
        self._recalled: set[str] = set()

    def recall_stored(self, model: str) -> None:
        """Once per model per start: take back the halts stored before a restart. A store
        hiccup is logged and tried again on the next call."""
        if self._stored is None or model in self._recalled:
            return
        try:
            stored = self._stored(model)
        except Exception:
            log.warning("could not read the stored rollout of %s", model, exc_info=True)
            return
        self._recalled.add(model)
        self.recall(model, stored)
        if self._models.get(model) and self._of(model).halted:
            log.info("rollout of %s: halts recalled from the repository", model)

    def _of(self, model: str) -> _ModelRollout:
        return self._models.setdefault(model, _ModelRollout())

    def observe(self, worker: str, pulled: list[str], now_s: float) -> None:
        """Record the versions a worker named in a pull (``name@version`` entries)."""
        for entry in pulled:
            name, sep, version = entry.partition("@")
            if sep and version:
                state = self._of(name)
                state.serving[worker] = (version, now_s)
                state.last_seen[version] = now_s

    def serving(self, model: str, now_s: float) -> dict[str, str]:
        """Worker → version, for workers of ``model`` that pulled recently."""
        state = self._models.get(model)
        if state is None:
            return {}
        return {w: v for w, (v, seen) in state.serving.items() if now_s - seen < WORKER_SEEN_S}

    def served_versions(self, model: str, now_s: float) -> set[str]:
        return set(self.serving(model, now_s).values())

    def last_seen(self, model: str, version: str) -> float | None:
        """When a worker last named ``model@version`` in a pull (None: not since start)."""
        state = self._models.get(model)
        return state.last_seen.get(version) if state is not None else None

    def request_swap(
        self,
        worker: str,
        model: str,
        target: str,
        pool_size: int,
        max_unavailable: str,
        now_s: float,
    ) -> str:
        """``go`` (the slot is this worker's until it reports), ``wait``, or ``halted``."""
        self.recall_stored(model)
        state = self._of(model)
        if target in state.halted:
            return HALTED
        for w, open_swap in list(state.swapping.items()):
            if now_s - open_swap.started_s > SWAP_TIMEOUT_S:
                open_swap.error = "swap slot lapsed (worker silent)"
                open_swap.finished_s = now_s
                del state.swapping[w]
        mine = state.swapping.get(worker)
        if mine is not None and mine.to_version == target:
            return GO
        if len(state.swapping) >= allowed_unavailable(max_unavailable, max(1, pool_size)):
            return WAIT
        current = state.serving.get(worker, (None, 0.0))[0]
        event = SwapEvent(worker, current, target, now_s)
        state.swapping[worker] = event
        state.events.append(event)
        return GO

    def finish_swap(
        self, worker: str, model: str, target: str, error: str | None, now_s: float
    ) -> None:
        """Close the worker's slot; an ``error`` halts the rollout of ``target``."""
        self.recall_stored(model)
        state = self._of(model)
        event = state.swapping.pop(worker, None)
        if event is None or event.to_version != target:  # slot lapsed, or a restart forgot it
            event = SwapEvent(worker, None, target, now_s)
            state.events.append(event)
        event.finished_s = now_s
        event.error = error
        if error is None:
            state.serving[worker] = (target, now_s)
        else:
            state.halted.setdefault(target, Halt(worker=worker, error=error[:500], at_s=now_s))

    def status(self, model: str, now_s: float) -> RolloutReport:
        """Serving versions, open swaps, halted versions with the reason, recent swaps."""
        self.recall_stored(model)
        state = self._models.get(model) or _ModelRollout()
        return {
            "model": model,
            "workers": dict(sorted(self.serving(model, now_s).items())),
            "swapping": sorted(state.swapping),
            "halted": {v: Halt(**why) for v, why in state.halted.items()},
            "events": [SwapRecord(**asdict(e)) for e in state.events],  # type: ignore[typeddict-item]
        }

    def models(self) -> list[str]:
        return sorted(self._models)

    def recall(self, model: str, stored: Mapping[str, Any] | None) -> None:
        """Take back the halts of a status stored by an earlier run (``status`` output, as
        ``rollout.yaml`` keeps it); halts this run already has win."""
        halted = (stored or {}).get("halted")
        if not isinstance(halted, Mapping):
            return
        state = self._of(model)
        for version, why in halted.items():
            if isinstance(why, Mapping):
                state.halted.setdefault(
                    str(version),
                    Halt(
                        worker=str(why.get("worker", "")),
                        error=str(why.get("error", "")),
                        at_s=float(why.get("at_s") or 0.0),
                    ),
                )
