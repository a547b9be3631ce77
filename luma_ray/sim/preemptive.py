"""Discrete-event replay with jobs divisible into steps, parked at step boundaries.

The same replay as :func:`luma_ray.sim.simulate._replay` (the scheduler's own
:class:`~luma_ray.scheduler.queues.QueueBook` and policy, dispatch at every arrival, completion
and capacity step), plus preemption: a job is ``steps`` sampler steps of ``service_s / steps``
seconds each (``steps`` from the trace's optional ``steps`` column, else ``default_steps``).
Whenever the pool is full and jobs wait, the best queued job (the policy's pick) is shown to
:class:`~luma_ray.scheduler.preemption.PreemptionRule`; a ``Park`` stops the chosen job at its
next step boundary. There its slot frees, and the job is requeued with its ORIGINAL enqueue
time and its progress (steps done). Any free slot resumes it; the resumed run costs
``overhead_s`` more (park + resume) before its remaining steps. A job's wait is still measured
to its first start, so ``summarize`` reads the same start times.

Parked jobs wait in a queue of their own per tier (model ``PARKED``): the pick over both
queues equals the pick over one merged queue (it is an argmax over every band's oldest job),
and admission control looks only at jobs that never started.

With preemption disabled the replay is event for event the plain one (a test checks it).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from luma_ray.scheduler.policies import Policy
from luma_ray.scheduler.preemption import PreemptionRule, Running, Waiting
from luma_ray.scheduler.queues import JobQueue, QueueBook
from luma_ray.scheduler.tiers import TierSpec
from luma_ray.sim.capacity import capacity_steps
from luma_ray.sim.traces.reader import Trace

_INF = math.inf
PARKED = "~parked"
"""The model name of the queues that hold parked jobs."""
DEFAULT_STEPS = 30
"""Steps per job when the trace has no ``steps`` column (a typical diffusion sampler)."""
_FINISH, _PARK = 0, 1


@dataclass(frozen=True)
class Replay:
    """Per job: first start, end (NaN if it never started or never finished), parks."""

    start: list[float]
    end: list[float]
    preemptions: list[int]
    parked: list[tuple[float, int, int]]
    """Every park as it happened: (time, job, steps done), in time order."""


def replay_preemptive(
    trace: Trace,
    capacity: list[tuple[float, int]],
    policy: Policy,
    specs: dict[str, TierSpec],
    rule: PreemptionRule,
    default_steps: int = DEFAULT_STEPS,
) -> Replay:
    """Replay ``trace``; ``rule`` decides parks and its config's ``overhead_s`` is charged."""
    arrival, service, tier_of = trace.arrival_s, trace.service_s, trace.tier
    n = len(arrival)
    steps = list(trace.steps) if trace.steps is not None else [default_steps] * n
    if any(s < 1 for s in steps):
        raise ValueError("every job needs at least one step")
    overhead = rule.config.overhead_s
    start = [math.nan] * n
    end = [math.nan] * n
    parks = [0] * n
    done = [0] * n  # steps completed when its current run started
    run_at = [0.0] * n  # when its current run's first step starts (after any overhead)
    finish_at = [0.0] * n
    last_parked: list[float | None] = [None] * n
    version = [0] * n  # bumped by each park order: older heap entries are stale
    parking = [False] * n
    log: list[tuple[float, int, int]] = []
    running_of: dict[str, set[int]] = {t: set() for t in specs}

    book = QueueBook(specs)  # first come, first served inside a tier: JobQueues

    def fifo(tier: str, model: str) -> JobQueue:
        q = book.queue(tier, model)
        assert isinstance(q, JobQueue)
        return q

    models = ["*", PARKED]
    tiers_used = sorted(set(tier_of))
    queue_of = {t: fifo(t, "*") for t in tiers_used}
    shed = {name: s.shed_ratio * s.max_wait_s for name, s in specs.items() if s.shed_ratio}
    pick, on_dispatch = book.pick, policy.on_dispatch
    events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, version)
    push, pop = heapq.heappush, heapq.heappop
    cap_times, cap_slots, c = capacity_steps(capacity)
    slots = cap_slots[c]
    busy = 0
    queued = 0
    i = 0

    def run(j: int, now: float) -> None:
        if parks[j]:
            run_at[j] = now + overhead
            finish_at[j] = run_at[j] + (steps[j] - done[j]) * (service[j] / steps[j])
        else:
            start[j] = run_at[j] = now
            finish_at[j] = now + service[j]
        end[j] = finish_at[j]
        push(events, (finish_at[j], _FINISH, j, version[j]))
        running_of[tier_of[j]].add(j)

    def next_boundary(j: int, now: float) -> tuple[int, float]:
        """(steps done at it, time) of ``j``'s next step boundary; inf if none before its end."""
        step_s = service[j] / steps[j]
        k = max(1, math.ceil((now - run_at[j]) / step_s - 1e-9))
        if done[j] + k >= steps[j]:
            return steps[j], _INF
        return done[j] + k, run_at[j] + k * step_s

    def view(j: int, now: float) -> Running:
        reached, at = next_boundary(j, now)
        return Running(
            key=j,
            tier=specs[tier_of[j]],
            steps_done=reached - 1,
            steps_total=steps[j],
            step_s=service[j] / steps[j],
            next_boundary_s=at,
            finish_s=finish_at[j],
            last_parked_s=last_parked[j],
            parks=parks[j],
            parking=parking[j],
        )

    def earliest_event() -> float:
        while events and events[0][3] != version[events[0][2]]:
            pop(events)  # a finish overtaken by a park order
        return events[0][0] if events else _INF

    def may_need(now: float) -> bool:
        """False when no queued job that never ran could miss for want of a slot: the first
        slot frees before the earliest deadline of every tier's savable jobs. Exact and cheap
        (one bisection per tier), so most events skip the policy's pick."""
        horizon = earliest_event()
        for t, q in queue_of.items():
            if q.live:
                slo = specs[t].max_wait_s
                k = q.first_younger_than(now - slo)
                if k < len(q.times) and q.times[k] + slo < horizon + 1e-6:
                    return True
        return False

    while i < n or queued:
        next_arrival = arrival[i] if i < n else _INF
        next_event = earliest_event()
        next_cap = cap_times[c + 1]
        now = min(next_arrival, next_event, next_cap)
        if now == _INF:
            break  # jobs queued but no capacity will ever come; they never start
        while events and events[0][0] <= now:
            _t, kind, j, v = pop(events)
            if v != version[j]:
                continue
            busy -= 1
            running_of[tier_of[j]].discard(j)
            if kind == _PARK:
                step_s = service[j] / steps[j]
                done[j] += round((_t - run_at[j]) / step_s)
                parks[j] += 1
                log.append((_t, j, done[j]))
                last_parked[j] = _t
                parking[j] = False
                end[j] = math.nan
                fifo(tier_of[j], PARKED).push(arrival[j], j)  # made at the first park
                queued += 1
        while cap_times[c + 1] <= now:
            c += 1
            slots = cap_slots[c]
        while i < n and arrival[i] <= now:
            tier = tier_of[i]
            q = queue_of[tier]
            if busy < slots and not queued:
                policy.on_arrival(specs[tier], now)
                run(i, now)
                busy += 1
                on_dispatch(specs[tier], 0, 0.0, now)
            elif tier in shed and q.live and now - q.times[q.first_live()] > shed[tier]:
                pass  # admission control: the tier's head is far past its SLO; reject
            else:
                policy.on_arrival(specs[tier], now)
                q.push(arrival[i], i)
                queued += 1
            i += 1
        while busy < slots and queued:
            p = pick(policy, models, now)
            assert p is not None
            run(p.seq, now)
            busy += 1
            queued -= 1
        if rule.enabled and queued and busy == slots and busy and may_need(now):
            p = pick(policy, models, now, take=False)
            assert p is not None
            spec = specs[p.tier]
            waiting = Waiting(spec, p.wait_s, p.rank, started=p.model == PARKED)
            if rule.needed(waiting, earliest_event(), now):
                low = spec.order + rule.config.min_tier_gap
                victims = [
                    view(j, now)
                    for t, js in running_of.items()
                    if specs[t].order >= low
                    for j in js
                    if not parking[j]
                ]
                order = rule.decide(waiting, victims, now)
                if order is not None:
                    victim = order.key
                    assert isinstance(victim, int)
                    parking[victim] = True
                    version[victim] += 1
                    push(events, (order.at_s, _PARK, victim, version[victim]))
    return Replay(start, end, parks, log)
