"""One rank of a model version, in its own process: the version's code and nobody else's.

Who calls this: ``gang.GangLauncher`` starts one :class:`ModelHost` actor per rank of a replica
(N accelerators → N ranks) inside the replica's placement group, with the version's code first
on ``PYTHONPATH`` and its pip requirements in the actor's runtime_env, so two versions whose
code shares module names run side by side and a swap starts fresh processes.

A gang of N > 1 ranks forms one ``torch.distributed`` group (gloo on CPU, NCCL on NVIDIA and
AMD/ROCm). Rank 0 is driven by the worker: ``generate`` broadcasts the job to the other ranks,
which wait in ``follow``; every rank runs the model on its share of the sequence. After every
sampler step rank 0 waits for the worker's answer (the heartbeat: go on, stop, or park) and
broadcasts it, so all ranks stop at the same step and no collective is left waiting. A park
gathers the whole latent on every rank (the model's own collective) before it raises, and a
resumed job's state and a job's decoded inputs (``Conditioning``) reach every rank with the
job.

Progress crosses to the worker in one call per step: the worker's ``wait_step`` returns when
rank 0 finished a step, the worker heartbeats, and its next ``wait_step`` carries the answer.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import logging
import os
import threading
from pathlib import Path
from typing import Any

from luma_ray.models.interface import (
    PARK,
    Conditioning,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ModelLimits,
    ParkedStateInvalid,
    StepAnswer,
    can_park,
)
from luma_ray.workers.tcp_ports import free_port

log = logging.getLogger(__name__)

ANSWER_WAIT_S = 60.0
"""Rank 0 waits this long for the worker's answer to a step before it carries on alone."""
GROUP_TIMEOUT_S = 120.0
"""A collective that waits longer than this (a rank died) fails instead of hanging."""


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
        rank: int = 0,
        world: int = 1,
        backend: str = "gloo",
    ) -> None:
        import torch

        logging.basicConfig(level=logging.INFO)
        torch.set_num_threads(max(1, torch_threads))
        self.name, self.version, self.folder = model, version, folder
        self.entrypoint, self.params = entrypoint, params
        self.rank, self.world, self.backend = rank, world, backend
        self.group: Any = None
        self.model: Any = None
        self.load_error: str | None = None
        """Why the version did not load (``describe`` reports it: Ray's own error for a failed
        actor buries the reason in a traceback)."""
        self._cond = threading.Condition()
        self._step = (0, 0)
        self._answered = 0  # the last step whose answer arrived from the worker
        self._generation = 0  # which generate call the step state belongs to
        self._running = False
        self._cancel = False
        self._park = False

    # -- setup -----------------------------------------------------------------------------

    def address(self) -> tuple[str, int]:
        """Where the group meets (called on rank 0): this node's address and a free port."""
        import ray

        port = free_port(host="")
        address: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return address, port

    def setup(self, master: tuple[str, int] | None) -> dict[str, Any]:
        """Join the gang's group (all ranks call this at once) and load the version."""
        import torch

        from luma_ray.models.registry import import_entrypoint

        try:
            device = self._device(torch)  # before the group: NCCL binds the current GPU
            if self.world > 1:
                import torch.distributed as dist

                assert master is not None
                dist.init_process_group(
                    self.backend,
                    init_method=f"tcp://{master[0]}:{master[1]}",
                    rank=self.rank,
                    world_size=self.world,
                    timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S),
                )
                self.group = dist.group.WORLD
            cls = import_entrypoint(self.entrypoint)
            self.model = cls(**self.params)
            self.model.load(Path(self.folder) / "checkpoints", device, self.group)
        except Exception as err:
            log.exception("host: %s@%s rank %d failed to load", self.name, self.version, self.rank)
            self.load_error = f"{type(err).__name__}: {err}"[:500]
        return self.describe()

    def _device(self, torch: Any) -> Any:
        if self.backend == "nccl" and torch.cuda.is_available():
            # Ray makes this rank's one GPU device 0; NCCL collectives (and the objects
            # broadcast_object_list moves) use the current device.
            torch.cuda.set_device(0)
            return torch.device("cuda", 0)
        return torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        """What runs here; ``source`` is the file the model class came from (which version's
        code this process imported)."""
        if self.load_error is not None:
            return {"version": self.version, "rank": self.rank, "error": self.load_error}
        import ray

        return {
            "version": self.version,
            "rank": self.rank,
            "node_labels": dict(ray.get_runtime_context().get_node_labels()),
            "limits": self.model.limits,
            "pid": os.getpid(),
            "source": inspect.getsourcefile(type(self.model)),
            "can_park": can_park(self.model),
        }

    # -- rank 0: driven by the worker --------------------------------------------------------

    def warmup(self) -> None:
        """One smallest generation on every rank, so the first job pays no lazy setup."""
        lim: ModelLimits = self.model.limits
        tiny = GenerationRequest(
            "warm-up", frames=1, height=lim.size_multiple, width=lim.size_multiple, steps=1
        )
        self._broadcast_job(tiny, None, None)
        self.model.generate(tiny, lambda step, total: self._share_answer(True))

    def generate(
        self,
        request: GenerationRequest,
        generation: int,
        resume: bytes | None = None,
        conditioning: Conditioning | None = None,
    ) -> Any:
        with self._cond:
            self._step, self._answered, self._running, self._cancel = (0, 0), 0, True, False
            self._park, self._generation = False, generation
            self._cond.notify_all()
        try:
            self._broadcast_job(request, resume, conditioning)
            return _generate(self.model, request, self._on_step, resume, conditioning)
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _on_step(self, step: int, total: int) -> StepAnswer:
        with self._cond:
            self._step = (step, total)
            self._cond.notify_all()
            # Wait for the worker's answer; if it never comes (worker gone), carry on.
            self._cond.wait_for(
                lambda: self._answered >= step or self._cancel or self._park, ANSWER_WAIT_S
            )
            answer: StepAnswer = False if self._cancel else PARK if self._park else True
        return self._share_answer(answer)

    def wait_step(
        self, generation: int, answered: int, go: bool | str, timeout_s: float
    ) -> tuple[int, int, bool]:
        """Take the answer for step ``answered`` (``go``: ``"go"`` or True goes on, ``"stop"``
        or False stops the model, ``PARK`` parks it), then block until a later step is done,
        the generation ends, or ``timeout_s`` passes. Returns (step, total, ended) of
        ``generation``; before it started, (0, 0, False)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._generation == generation, timeout_s):
                return 0, 0, False
            if answered > self._answered:
                self._answered = answered
            if go == PARK:
                self._park = True
            elif go is False or go == "stop":
                self._cancel = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._step[0] > answered or not self._running, timeout_s)
            return self._step[0], self._step[1], not self._running

    # -- the gang ----------------------------------------------------------------------------

    def _broadcast_job(
        self,
        request: GenerationRequest,
        resume: bytes | None,
        conditioning: Conditioning | None,
    ) -> None:
        """The job, its parked state and its decoded inputs, from rank 0 to every rank."""
        if self.world > 1:
            import torch.distributed as dist

            job = (request, resume, conditioning)
            dist.broadcast_object_list([job], src=0, group=self.group)

    def _share_answer(self, answer: StepAnswer) -> StepAnswer:
        """Rank 0's answer for this step, on every rank (a collective: all ranks call it):
        go on (True), stop (False) or park (``PARK``)."""
        if self.world == 1:
            return answer
        import torch
        import torch.distributed as dist

        device = "cuda" if self.backend == "nccl" else "cpu"  # NCCL moves GPU tensors only
        code = 2 if answer == PARK else 1 if answer else 0
        flag = torch.tensor([code], dtype=torch.int32, device=device)
        dist.broadcast(flag, src=0, group=self.group)
        answers: dict[int, StepAnswer] = {0: False, 1: True, 2: PARK}
        return answers[int(flag.item())]

    def follow(self) -> None:
        """Ranks above 0: run every job rank 0 broadcasts, until the process is killed."""
        import torch.distributed as dist

        while True:
            box: list[Any] = [None]
            dist.broadcast_object_list(box, src=0, group=self.group)
            request, resume, conditioning = box[0]
            # A stop or a park is rank 0's decision, and rank 0 reports the job.
            with contextlib.suppress(GenerationCancelled, GenerationParked, ParkedStateInvalid):
                follow = lambda step, total: self._share_answer(True)  # noqa: E731
                _generate(self.model, request, follow, resume, conditioning)


def _generate(
    model: Any,
    request: GenerationRequest,
    on_step: Any,
    resume: bytes | None,
    conditioning: Conditioning | None = None,
) -> Any:
    """``model.generate``, with ``resume`` only when there is a state (models that cannot
    park take no such argument) and ``conditioning`` only when the request has inputs (models
    without inputs take no such argument)."""
    extra: dict[str, Any] = {}
    if resume is not None:
        extra["resume"] = resume
    if conditioning is not None:
        extra["conditioning"] = conditioning
    return model.generate(request, on_step, **extra)
