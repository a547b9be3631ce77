"""One heartbeat call per node: the workers of a node send their heartbeats through one relay,
which renews their leases together (``Heartbeats``).

Every sampler step of every job sends a heartbeat (``loop.py``): it renews the lease, reports
progress and brings back the cancel and park flags. A fleet of many small replicas (one
accelerator each, eight or more to a node) makes that the scheduler actor's most frequent call.
With ``heartbeat_relay`` on a pool (``PoolConfig``), each worker sends its heartbeat to its
node's relay (one small actor per node, made by the first worker that needs it), and the relay
forwards the beats that arrived together as one ``Heartbeats`` call, then hands each worker its
own answer.

How beats are grouped (:class:`BeatRelay`): a beat that finds no call in flight goes at once,
alone, so an idle node pays only the local hop; beats that arrive while a call is in flight go
together in the next call. So the batches grow with the load, as the journal's group commit
does, and no beat waits for a timer.

What a worker sees (:class:`RelayedBeats`) is what a direct heartbeat gives: the reply, or
``StaleLease`` / ``NotFound`` for a refused lease, or the scheduler's error. A beat never waits
for a relay to start (leases last seconds): a worker beats directly until its relay has
answered once. If the relay then does not answer a beat within ``RELAY_WAIT_S`` (it was
killed, or is stuck), that beat goes directly, and the relay is looked up again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, TypeVar, cast

from luma_ray.errors import LumaError, StaleLease
from luma_ray.scheduler.leasing import REFUSED
from luma_ray.scheduler.protocol import (
    AsyncSchedulerPort,
    Beat,
    Heartbeat,
    HeartbeatReply,
    Heartbeats,
    LeaseRefused,
    Op,
    SchedulerPort,
)

log = logging.getLogger(__name__)

R = TypeVar("R")

RELAY_PREFIX = "luma-beats/"
"""The relay actor of a node is named this plus the node's id."""
_REFUSALS: dict[str, type[LumaError]] = {error.code: error for error in REFUSED}
"""A refused beat's error by its code (the ones ``Heartbeats`` answers in place)."""

Answer = HeartbeatReply | LeaseRefused


class BeatRelay:
    """Beats of many workers, sent to the scheduler in as few ``Heartbeats`` calls as the
    load allows (see the module docstring). Runs on one event loop."""

    def __init__(self, port: AsyncSchedulerPort) -> None:
        self.port = port
        self._waiting: list[tuple[Beat, asyncio.Future[Answer]]] = []
        self._sending = False
        self._sender: asyncio.Task[None] | None = None  # held: the loop keeps only weak refs
        self.calls = 0
        """``Heartbeats`` calls made so far."""
        self.beats = 0
        """Beats sent in them."""

    async def beat(self, beat: Beat) -> Answer:
        """Send ``beat`` with whatever else waits; its answer, or the call's error."""
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((beat, answer))
        if not self._sending:
            self._sending = True
            self._sender = asyncio.get_running_loop().create_task(self._send())
        return await answer

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self.calls += 1
                self.beats += len(batch)
                try:
                    answers = await self.port.call(Heartbeats(tuple(b for b, _ in batch)))
                except Exception as err:  # every beat of the call gets the scheduler's error
                    for _, waiting in batch:
                        if not waiting.done():
                            waiting.set_exception(err)
                    continue
                for (_, waiting), answer in zip(batch, answers, strict=True):
                    if not waiting.done():
                        waiting.set_result(answer)
        finally:
            self._sending = False


class BeatRelayActor:
    """The relay as a Ray actor (one per node: :func:`node_relay` applies ``ray.remote``)."""

    def __init__(self, call_timeout_s: float) -> None:
        self.relay = BeatRelay(_Scheduler(call_timeout_s))

    async def beat(self, beat: Beat) -> Answer:
        return await self.relay.beat(beat)

    def counts(self) -> dict[str, int]:
        """``Heartbeats`` calls made and beats sent in them, so far."""
        return {"calls": self.relay.calls, "beats": self.relay.beats}


class _Scheduler:
    """The scheduler actor by name, looked up again after a call that failed (a scheduler
    started anew is another actor); one attempt per call, like a worker's own beats."""

    def __init__(self, call_timeout_s: float) -> None:
        self.call_timeout_s = call_timeout_s
        self._handle: Any = None

    async def call(self, op: Op[R]) -> R:
        from luma_ray.runtime.handle import AsyncSchedulerHandle, scheduler_actor

        if self._handle is None:
            self._handle = AsyncSchedulerHandle(
                scheduler_actor(), restart_wait_s=0.0, call_timeout_s=self.call_timeout_s
            )
        try:
            answer: R = await self._handle.call(op)
        except Exception:
            self._handle = None
            raise
        return answer


def node_relay(call_timeout_s: float) -> Any:
    """This node's relay actor, made if it is not there yet (the one place ``ray.remote`` is
    applied to it): pinned to the node, no CPU, named after the node, outliving the worker
    that made it (the node's other workers use it too)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from luma_ray.runtime.handle import NAMESPACE

    node = ray.get_runtime_context().get_node_id()
    return (
        ray.remote(BeatRelayActor)
        .options(
            name=RELAY_PREFIX + node,
            namespace=NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )
        .remote(call_timeout_s)
    )


class Unreachable(Exception):
    """The relay did not answer a beat (gone, or too slow): that beat goes directly."""


class Relay(Protocol):
    """This node's relay as one worker sees it (:class:`RayRelay`; tests pass fakes)."""

    def ready(self) -> bool:
        """Whether beats may go through it now; never waits (it may start it meanwhile)."""
        ...

    def send(self, beat: Beat) -> Answer:
        """One beat through it: its answer, the scheduler's error, or ``Unreachable``."""
        ...


class RelayedBeats:
    """A worker's heartbeat port: ``Heartbeat`` goes through the node's relay once it is
    ready, every other call (and every beat before that, or when the relay does not answer)
    to ``direct``. A beat never waits for the relay to start: a lease of a few seconds would
    lapse meanwhile."""

    def __init__(self, direct: SchedulerPort, relay: Relay) -> None:
        self.direct = direct
        self.relay = relay

    def call(self, op: Op[R]) -> R:
        if isinstance(op, Heartbeat):
            return cast(R, self._beat(op))
        return self.direct.call(op)

    def _beat(self, op: Heartbeat) -> HeartbeatReply:
        try:
            usable = self.relay.ready()
        except Exception:
            log.warning("no heartbeat relay on this node; beating directly", exc_info=True)
            usable = False
        if not usable:
            return self.direct.call(op)
        try:
            answer = self.relay.send(Beat(op.job_id, op.token, op.step, op.total, op.phase))
        except Unreachable as err:
            log.warning("the heartbeat relay did not answer (%s); beating directly", err)
            return self.direct.call(op)
        if isinstance(answer, LeaseRefused):
            raise _REFUSALS.get(answer.code, StaleLease)(answer.message)
        return answer


class RayRelay:
    """This node's relay actor, seen from one worker: made or found on first use
    (:func:`node_relay`), ready once it answered a probe; a beat it does not answer within
    ``wait_s`` drops it, to be found and probed again."""

    def __init__(self, wait_s: float, call_timeout_s: float) -> None:
        self.wait_s = wait_s
        self.call_timeout_s = call_timeout_s
        self._actor: Any = None
        self._probe: Any = None
        self._ready = False

    def ready(self) -> bool:
        import ray
        from ray.exceptions import RayError

        if self._ready:
            return True
        if self._actor is None:
            self._actor = node_relay(self.call_timeout_s)
            self._probe = self._actor.counts.remote()
        done, _ = ray.wait([self._probe], timeout=0)
        if not done:
            return False
        try:
            ray.get(self._probe)
        except RayError:
            self._drop()
            raise
        self._ready = True
        return True

    def send(self, beat: Beat) -> Answer:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        try:
            answer: Answer = ray.get(self._actor.beat.remote(beat), timeout=self.wait_s)
        except RayTaskError as err:  # the relay's call to the scheduler failed: its error
            cause = err.cause
            raise (cause if isinstance(cause, Exception) else err) from None
        except (RayActorError, GetTimeoutError) as err:
            self._drop()
            raise Unreachable(type(err).__name__) from None
        return answer

    def _drop(self) -> None:
        self._actor, self._probe, self._ready = None, None, False


RELAY_WAIT_S = 2.0
"""How long a worker waits for its relay's answer to a beat before it beats directly (a
relayed beat takes milliseconds; leases last seconds)."""


def heartbeat_port(direct: SchedulerPort, relay: bool, timeout_s: float) -> SchedulerPort:
    """A worker's heartbeat port: through its node's relay (``relay``), else ``direct``."""
    if not relay:
        return direct
    return RelayedBeats(direct, RayRelay(RELAY_WAIT_S, timeout_s))
