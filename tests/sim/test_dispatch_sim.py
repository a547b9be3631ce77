"""The multi-cluster dispatch simulator: limits hold, every job runs once, metrics add up."""

from __future__ import annotations

import math
import random

import pytest

from luma_ray.jobs import JobState
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.sim.dispatch_sim import ClusterSpec, run_dispatch_sim
from luma_ray.sim.traces.reader import Trace
from luma_ray.sim.traces.writer import TIER_SHARES, TIERS


def make_trace(rows: list[tuple[float, str, float]]) -> Trace:
    return Trace(
        [r[0] for r in rows],
        [f"{r[1]}-{i % 3}" for i, r in enumerate(rows)],
        [r[1] for r in rows],
        ["m" if i % 4 else "m-hd" for i in range(len(rows))],
        [r[2] for r in rows],
    )


def overload(n: int = 600, seed: int = 7, tiers: tuple[str, ...] = TIERS) -> Trace:
    """``n`` jobs at about twice what 8 slots serve: a queue builds up and stays."""
    rng = random.Random(seed)
    shares = TIER_SHARES if tiers == TIERS else [1.0] * len(tiers)
    t, rows = 0.0, []
    for _ in range(n):
        t += rng.expovariate(1 / 1.5)
        rows.append((t, rng.choices(tiers, shares)[0], rng.lognormvariate(math.log(20), 0.5)))
    return make_trace(rows)


def two_clusters(limit_a: int | None, limit_b: int | None, latency_s: float = 1.0) -> list:
    return [ClusterSpec("a", 5, limit_a, latency_s), ClusterSpec("b", 3, limit_b, 3 * latency_s)]


def test_a_cluster_with_limit_zero_runs_nothing() -> None:
    trace = overload(200)
    result = run_dispatch_sim(trace, two_clusters(None, 0))
    assert result.clusters["b"].jobs_run == 0
    assert result.clusters["b"].max_in_flight == 0
    assert result.clusters["a"].jobs_run == len(trace) == result.served


def test_limit_zero_everywhere_serves_nothing_and_ends() -> None:
    result = run_dispatch_sim(overload(50), two_clusters(0, 0))
    assert result.served == 0 and result.busy_s == 0
    assert all(math.isnan(s) for s in result.start_s)
    assert result.idle_limit_s > 0


def test_unlimited_with_zero_latency_never_idles_while_work_is_queued() -> None:
    clusters = two_clusters(None, None, latency_s=0.0)

    def every_slot_holds_a_lease(now_s: float, sched: SchedulerCore) -> None:
        if len(sched.queues):
            assert sum(sched.in_flight.values()) >= 8, now_s

    result = run_dispatch_sim(overload(), clusters, observer=every_slot_holds_a_lease)
    assert result.idle_limit_s == 0
    assert result.idle_latency_s == 0
    assert result.idle_unexplained_s == 0
    assert result.busy_s > 0


@pytest.mark.parametrize("limits", [(1, 1), (2, 5), (4, 3), (7, None), (5, 6)])
def test_in_flight_never_exceeds_the_limit(limits: tuple[int | None, int | None]) -> None:
    clusters = two_clusters(*limits)

    def within_limits(now_s: float, sched: SchedulerCore) -> None:
        for c in clusters:
            if c.dispatch_limit is not None:
                assert sched.in_flight[c.name] <= c.dispatch_limit, (now_s, c.name)
            assert sched.in_flight[c.name] <= 2 * c.slots  # one running + one prefetched

    result = run_dispatch_sim(overload(), clusters, observer=within_limits)
    for c in clusters:
        reached = result.clusters[c.name].max_in_flight
        assert reached == (c.dispatch_limit if c.dispatch_limit is not None else 2 * c.slots)
    assert result.idle_unexplained_s == 0


@pytest.mark.parametrize("limits", [(None, None), (1, 2), (5, 3), (6, 0)])
def test_every_job_is_served_exactly_once(limits: tuple[int | None, int | None]) -> None:
    trace = overload(400, seed=3)
    seen: list[SchedulerCore] = []
    result = run_dispatch_sim(trace, two_clusters(*limits), observer=lambda _, s: seen.append(s))
    jobs = seen[-1].jobs
    assert len(jobs) == len(trace) == result.served
    assert sum(c.jobs_run for c in result.clusters.values()) == len(trace)
    for job in jobs.values():
        assert job.state is JobState.SUCCEEDED
        assert [s for _, s, _ in job.history].count(JobState.RUNNING) == 1
    ends = sorted(s + trace.service_s[i] for i, s in enumerate(result.start_s))
    assert ends[-1] == pytest.approx(result.end_s)


def test_no_inversions_with_a_single_tier() -> None:
    clusters = two_clusters(None, None)
    mixed = run_dispatch_sim(overload(), clusters)
    assert mixed.inversions > 0  # the same load with tiers does invert
    single = run_dispatch_sim(overload(tiers=("free",)), clusters)
    assert single.inversions == 0
    assert single.passed_over == 0 and single.inversion_wait_s == 0


def test_a_prefetched_job_inverts_a_later_api_job() -> None:
    """One slot, 1 s latency: free A runs from 1 s; free B is prefetched at 1 s; api C comes at
    2 s. B starts at 11 s while C has waited 9 s: one inversion. C is prefetched at 11 s and
    starts at 21 s, 10 s after it was passed over."""
    trace = make_trace([(0.0, "free", 10.0), (0.5, "free", 10.0), (2.0, "api", 5.0)])
    result = run_dispatch_sim(trace, [ClusterSpec("one", 1, None, 1.0)])
    assert result.start_s == [1.0, 11.0, 21.0]
    assert (result.inversions, result.passed_over) == (1, 1)
    assert result.inversion_wait_s == pytest.approx(10.0)
    assert result.idle_latency_s == pytest.approx(1.0)
    # With a limit of 1 there is no prefetch: C goes before B and nothing inverts.
    limited = run_dispatch_sim(trace, [ClusterSpec("one", 1, 1, 1.0)])
    assert limited.start_s == [1.0, 18.0, 12.0]
    assert limited.inversions == 0
    assert limited.idle_latency_s == pytest.approx(3.0)


def test_prefetching_near_the_end_lets_the_later_api_job_go_first() -> None:
    """The trace above, but the worker prefetches 2 s before its job ends: at 9 s it leases
    api C (queued since 2 s), which starts at 11 s; free B is leased at 14 s and starts at
    16 s. Nothing inverts, and the slot never waits on a lease in transit after the first."""
    trace = make_trace([(0.0, "free", 10.0), (0.5, "free", 10.0), (2.0, "api", 5.0)])
    result = run_dispatch_sim(trace, [ClusterSpec("one", 1, None, 1.0)], prefetch_lead_s=2.0)
    assert result.start_s == [1.0, 16.0, 11.0]
    assert (result.inversions, result.passed_over) == (0, 0)
    assert result.idle_latency_s == pytest.approx(1.0)
    # A lead shorter than the pull latency leaves the slot waiting for the rest of it.
    short = run_dispatch_sim(trace, [ClusterSpec("one", 1, None, 1.0)], prefetch_lead_s=0.5)
    assert short.start_s == [1.0, 17.0, 11.5]
    assert short.idle_latency_s == pytest.approx(2.0)


@pytest.mark.parametrize("lead_s", [0.5, 5.0, 30.0])
def test_every_job_runs_once_with_any_prefetch_lead(lead_s: float) -> None:
    trace = overload(300, seed=5)
    seen: list[SchedulerCore] = []
    clusters = two_clusters(None, 4)
    result = run_dispatch_sim(
        trace, clusters, observer=lambda _, s: seen.append(s), prefetch_lead_s=lead_s
    )
    assert result.served == len(trace) and result.idle_unexplained_s == 0
    assert all(job.state is JobState.SUCCEEDED for job in seen[-1].jobs.values())


@pytest.mark.parametrize(
    ("limits", "lead_s"),
    [((None, None), None), ((6, 4), None), ((3, None), None), ((None, None), 3.0)],
)
def test_inversion_metrics_match_a_brute_force_count(
    limits: tuple[int | None, int | None], lead_s: float | None
) -> None:
    """Recount from the jobs' histories, O(n^2). Times are random floats, so a lease and a
    start share a time only when a finish starts a prefetched job and pulls the next one;
    the start then comes first, so a job leased at that very time still counts as queued."""
    trace = overload(300, seed=11)
    clusters = two_clusters(*limits, latency_s=0.7)
    latency = {c.name: c.pull_latency_s for c in clusters}
    seen: list[SchedulerCore] = []
    result = run_dispatch_sim(
        trace, clusters, observer=lambda _, s: seen.append(s), prefetch_lead_s=lead_s
    )
    order = {t: k for k, t in enumerate(TIERS)}
    leased_at, cluster_of = [], []
    for i in range(len(trace)):
        when, _, why = next(h for h in seen[-1].jobs[str(i)].history if h[1] is JobState.LEASED)
        leased_at.append(when)
        cluster_of.append(why.removeprefix("leased to ").rsplit("-", 1)[0])
    first = [math.inf] * len(trace)
    count = 0
    for x, s in enumerate(result.start_s):
        cutoff = s - latency[cluster_of[x]]
        over = [
            y
            for y in range(len(trace))
            if order[trace.tier[y]] < order[trace.tier[x]]
            and trace.arrival_s[y] < cutoff
            and leased_at[y] >= s
        ]
        count += bool(over)
        for y in over:
            first[y] = min(first[y], s)
    passed = [y for y in range(len(trace)) if first[y] < math.inf]
    assert count > 0
    assert result.inversions == count
    assert result.passed_over == len(passed)
    wait = sum(result.start_s[y] - first[y] for y in passed)
    assert result.inversion_wait_s == pytest.approx(wait)


def test_a_burst_past_the_default_tenant_caps_is_replayed_whole() -> None:
    # 600 free jobs of one tenant at once: past the scheduler's default cap (free: 500
    # queued), which must never refuse an arrival the trace recorded.
    trace = Trace([0.0] * 600, ["one"] * 600, ["free"] * 600, ["m"] * 600, [1.0] * 600)
    result = run_dispatch_sim(trace, [ClusterSpec("a", 4, None, 0.0)])
    assert result.served == 600
