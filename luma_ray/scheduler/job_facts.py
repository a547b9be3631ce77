"""Where a fair-share lane reads a queued job's tenant and cost (:mod:`.shares`): a port with
two adapters, one that keeps what each push gives and one that asks the caller's own records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from luma_ray.jobs import Job
from luma_ray.jobs.request import DEFAULT_FRAMES, DEFAULT_STEPS


class JobFacts(Protocol):
    """Where a lane reads a queued job's tenant and cost by its sequence number. The live
    scheduler and the simulator answer from the records they keep anyway, so a deep queue
    holds no second copy (two dict entries a job); :class:`KeptFacts` keeps them for callers
    that have none. ``keep`` is called at every push, ``drop`` when the job leaves."""

    def keep(self, seq: int, tenant: str, cost: float) -> None: ...

    def drop(self, seq: int) -> None: ...

    def tenant_of(self, seq: int) -> str: ...

    def cost_of(self, seq: int) -> float: ...


class KeptFacts:
    """:class:`JobFacts` that keeps what each push gives (tests and benchmarks)."""

    __slots__ = ("_tenant", "_cost")

    def __init__(self) -> None:
        self._tenant: dict[int, str] = {}
        self._cost: dict[int, float] = {}

    def keep(self, seq: int, tenant: str, cost: float) -> None:
        self._tenant[seq] = tenant
        self._cost[seq] = cost

    def drop(self, seq: int) -> None:
        self._tenant.pop(seq, None)
        self._cost.pop(seq, None)

    def tenant_of(self, seq: int) -> str:
        return self._tenant[seq]

    def cost_of(self, seq: int) -> float:
        return self._cost[seq]


class LookedUpFacts:
    """:class:`JobFacts` answered by two lookups of the caller's own; keeps nothing."""

    __slots__ = ("tenant_of", "cost_of")

    def __init__(self, tenant_of: Callable[[int], str], cost_of: Callable[[int], float]) -> None:
        self.tenant_of = tenant_of
        self.cost_of = cost_of

    def keep(self, seq: int, tenant: str, cost: float) -> None:
        pass

    def drop(self, seq: int) -> None:
        pass


_UNIT_SIZE = DEFAULT_FRAMES * 64 * 64 * DEFAULT_STEPS


def job_cost(job: Job) -> float:
    """What one dispatch of ``job`` charges its tenant in the live scheduler: its size,
    frames x width x height x steps, in units of a default request (16 frames of 64x64, 8 steps)."""
    p = job.params
    return max(p.frames * p.width * p.height * p.steps / _UNIT_SIZE, 1e-6)


def from_job_table(job_at: Mapping[int, Job]) -> LookedUpFacts:
    """The live scheduler's facts: a queued job's record by sequence number, read at need."""
    return LookedUpFacts(lambda seq: job_at[seq].tenant, lambda seq: job_cost(job_at[seq]))
