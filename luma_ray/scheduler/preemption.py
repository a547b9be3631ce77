"""When parking a running job at a step boundary pays: a pure rule, shared by the simulator
(:mod:`luma_ray.sim.preemptive`) and the live scheduler.

A diffusion job is a sequence of sampler steps; between two steps its whole state (latent and
sampler) can be written away and the job resumed later, on any worker, from the same step. The
rule decides, for the best queued job (the one the policy would start on the next free slot),
whether one running job should stop at its next step boundary and give its slot up:

- the waiting job can still make its SLO (its wait is below the SLO) and has never run (a
  parked job waiting to resume has had its first start: its SLO is already decided);
- no slot frees in time: every running job ends, or reaches a boundary where it was already
  told to park, after the waiting job's deadline (enqueue time + SLO);
- a victim exists: a running job at least ``min_tier_gap`` tiers below the waiting job, whose
  next step boundary comes before that deadline, that was not parked within ``min_gap_s`` nor
  more than ``max_parks`` times, and that has at least ``min_remaining_s`` and
  ``min_remaining_fraction`` of its work left after that boundary (a job about to finish is
  left alone: its slot frees soon anyway and the park would cost more than it saves).

Among the victims the cheapest goes: the lowest tier first, then the one whose boundary comes
soonest (the waiting job starts earliest), then the one with the most work left. The parked
job pays ``overhead_s`` more work when it resumes; the caller counts it.

:meth:`PreemptionRule.decide_each` applies the rule to several queued jobs in serving order
(the live scheduler's queue heads), each claiming its own slot; :meth:`Running.from_progress`
builds a running job's view from its progress reports.

Pure: no clock reads (``now_s`` is an argument), no state; decisions are frozen values.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from luma_ray.config import PreemptionConfig
from luma_ray.scheduler.tiers import TierSpec

_INF = float("inf")


@dataclass(frozen=True)
class Waiting:
    """The best queued job, as the policy ranks it."""

    tier: TierSpec
    wait_s: float
    """Time since its original enqueue."""
    rank: float = 0.0
    """Its rank under the policy (for the reason text; the caller chose it as the best)."""
    started: bool = False
    """It ran before and was parked: its first start, and so its SLO, is already decided."""


@dataclass(frozen=True)
class Running:
    """A running job, as the rule needs to see it."""

    key: Hashable
    """Whatever the caller names the job by (a sequence number, a job id)."""
    tier: TierSpec
    steps_done: int
    """Sampler steps completed so far (over all its runs)."""
    steps_total: int
    step_s: float
    """Seconds per step."""
    next_boundary_s: float
    """When its next step ends (absolute time); ``inf`` if the next step is its last."""
    finish_s: float
    """When it ends if it is not parked (absolute time)."""
    last_parked_s: float | None = None
    """When it was last parked, if ever."""
    parks: int = 0
    """How many times it was parked."""
    parking: bool = False
    """Already told to park: its slot frees at ``next_boundary_s``."""

    def frees_at(self) -> float:
        """When its slot frees if nothing new is decided."""
        return self.next_boundary_s if self.parking else self.finish_s

    @classmethod
    def from_progress(
        cls,
        key: Hashable,
        tier: TierSpec,
        steps_done: int,
        steps_total: int,
        step_s: float,
        last_step_s: float,
        *,
        last_parked_s: float | None = None,
        parks: int = 0,
        parking: bool = False,
    ) -> Running:
        """A job seen through its progress reports: step ``steps_done`` ended at
        ``last_step_s`` and a step takes ``step_s`` (``inf`` while its pace is unknown)."""
        left = steps_total - steps_done
        boundary = last_step_s + step_s if left > 1 else _INF
        return cls(
            key,
            tier,
            steps_done,
            steps_total,
            step_s,
            boundary,
            last_step_s + left * step_s,
            last_parked_s,
            parks,
            parking,
        )


@dataclass(frozen=True)
class Park:
    """Stop ``key`` at its step boundary ``at_s``, write its state, requeue it."""

    key: Hashable
    at_s: float
    reason: str


class PreemptionRule:
    """The rule, configured once; :meth:`decide` is a pure function of its arguments."""

    def __init__(self, config: PreemptionConfig) -> None:
        self.config = config
        self.enabled = config.enabled

    def deadline(self, waiting: Waiting, now_s: float) -> float | None:
        """When ``waiting`` must start to make its SLO, or None if parking cannot help it."""
        if not self.enabled or waiting.started or waiting.wait_s >= waiting.tier.max_wait_s:
            return None
        return now_s + waiting.tier.max_wait_s - waiting.wait_s

    def needed(self, waiting: Waiting, earliest_free_s: float, now_s: float) -> bool:
        """Whether ``waiting`` misses its SLO when the first slot frees at ``earliest_free_s``.

        A cheap pre-check: callers with many running jobs test it before building views."""
        deadline = self.deadline(waiting, now_s)
        return deadline is not None and earliest_free_s > deadline

    def decide(self, waiting: Waiting, running: Iterable[Running], now_s: float) -> Park | None:
        """Park one running job so that ``waiting`` starts within its SLO, or None.

        ``running`` is every job holding a slot of a full pool (all the slots ``waiting``
        could use). Call it again after each change; one call parks at most one job."""
        deadline = self.deadline(waiting, now_s)
        if deadline is None:
            return None
        cfg = self.config
        min_order = waiting.tier.order + cfg.min_tier_gap
        best: Running | None = None
        best_key = (0, _INF, 0.0)
        for r in running:
            if r.frees_at() <= deadline:
                return None  # a slot frees in time without a new park
            if (
                r.parking
                or r.tier.order < min_order
                or r.next_boundary_s > deadline
                or r.parks >= cfg.max_parks
                or (r.last_parked_s is not None and now_s - r.last_parked_s < cfg.min_gap_s)
            ):
                continue
            left_s = r.finish_s - r.next_boundary_s
            if left_s < cfg.min_remaining_s or left_s < cfg.min_remaining_fraction * (
                r.steps_total * r.step_s
            ):
                continue
            key = (-r.tier.order, r.next_boundary_s, -left_s)
            if best is None or key < best_key:
                best, best_key = r, key
        if best is None:
            return None
        reason = (
            f"a {waiting.tier.name} job waiting {waiting.wait_s:.0f} s would miss its "
            f"{waiting.tier.max_wait_s:.0f} s SLO; the {best.tier.name} job parks after step "
            f"{best.steps_done + 1} of {best.steps_total}"
        )
        return Park(best.key, best.next_boundary_s, reason)

    def decide_each(
        self, heads: Sequence[Waiting], running: Iterable[Running], now_s: float
    ) -> list[Park]:
        """:meth:`decide` for several queued jobs that share the same running jobs' slots,
        ``heads`` in the order they will be served (most urgent first).

        Each head claims a slot: the one that frees soonest if that is in time for it (or if
        parking cannot help it), else the slot of the job :meth:`decide` parks for it. A
        claimed job is not offered to the heads after it, so two heads never count on the
        same slot and a job is parked at most once."""
        free = list(running)
        parks: list[Park] = []
        for head in heads:
            if not free:
                break
            soonest = min(free, key=Running.frees_at)
            deadline = self.deadline(head, now_s)
            park = None
            if deadline is not None and soonest.frees_at() > deadline:
                park = self.decide(head, free, now_s)
            if park is None:
                free.remove(soonest)
            else:
                parks.append(park)
                free = [r for r in free if r.key != park.key]
        return parks
