"""Preemption at step boundaries: the pure rule, and the replay that uses it."""

from __future__ import annotations

import json
import math
import random
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from luma_ray.cli import main
from luma_ray.config import PreemptionConfig, TierConfig, default_tiers, parse_config
from luma_ray.errors import ConfigError, TraceError
from luma_ray.scheduler.policies import DEFAULT_POLICY, POLICIES, make_policy
from luma_ray.scheduler.preemption import Park, PreemptionRule, Running, Waiting
from luma_ray.scheduler.tiers import tier_specs
from luma_ray.sim.preemptive import replay_preemptive
from luma_ray.sim.simulate import _replay, simulate
from luma_ray.sim.traces.reader import Trace, read_trace

SPECS = tier_specs(default_tiers())
API, ENTERPRISE, LIGHT, FREE = SPECS["api"], SPECS["enterprise"], SPECS["light"], SPECS["free"]
ON = PreemptionConfig(enabled=True, overhead_s=0.0, min_gap_s=600.0)


def trace_of(rows: list[tuple[float, str, float]], steps: list[int] | None = None) -> Trace:
    return Trace(
        [r[0] for r in rows],
        [f"t{i % 3}" for i in range(len(rows))],
        [r[1] for r in rows],
        ["m"] * len(rows),
        [r[2] for r in rows],
        steps,
    )


def replay(rows, capacity, config=ON, policy="strict", steps=None, default_steps=30):
    return replay_preemptive(
        trace_of(rows, steps),
        capacity,
        make_policy(policy),
        SPECS,
        PreemptionRule(config),
        default_steps,
    )


def random_rows(seed: int, n: int = 150) -> list[tuple[float, str, float]]:
    rng = random.Random(seed)
    rows, t = [], 0.0
    for _ in range(n):
        t += rng.choice([0.0, rng.expovariate(1 / 40.0)])
        rows.append((round(t, 1), rng.choice(list(SPECS)), round(rng.uniform(20, 400), 1)))
    return rows


# ---- the rule ------------------------------------------------------------------------------


def running(key, tier=FREE, boundary=10.0, finish=1000.0, **kw) -> Running:
    fields = {"steps_done": 0, "steps_total": 100, "step_s": 10.0, **kw}
    return Running(key, tier, next_boundary_s=boundary, finish_s=finish, **fields)


def test_rule_parks_a_lower_tier_job_when_no_slot_frees_in_time() -> None:
    rule = PreemptionRule(ON)
    # api waited 30 s of 120: deadline at now + 90 = 190; both jobs end after it.
    park = rule.decide(Waiting(API, 30.0), [running("a"), running("b", boundary=5.0)], 100.0)
    assert park == Park("b", 5.0, park.reason)  # the sooner boundary
    assert "api job" in park.reason and "free job parks after step 1 of 100" in park.reason
    with pytest.raises(FrozenInstanceError):
        park.at_s = 1.0  # type: ignore[misc]


def test_rule_does_nothing_when_off_or_a_slot_frees_in_time() -> None:
    jobs = [running("a"), running("b", finish=180.0)]
    off = PreemptionRule(PreemptionConfig())
    assert off.decide(Waiting(API, 30.0), [running("a")], 100.0) is None
    assert PreemptionRule(ON).decide(Waiting(API, 30.0), jobs, 100.0) is None  # b ends at 180
    # A park already ordered frees a slot at its boundary, in time: no second park.
    jobs = [running("a"), running("b", boundary=150.0, parking=True)]
    assert PreemptionRule(ON).decide(Waiting(API, 30.0), jobs, 100.0) is None
    assert PreemptionRule(ON).needed(Waiting(API, 30.0), 191.0, 100.0)
    assert not PreemptionRule(ON).needed(Waiting(API, 30.0), 190.0, 100.0)


def test_rule_never_parks_for_a_late_or_already_started_job() -> None:
    rule = PreemptionRule(ON)
    assert rule.decide(Waiting(API, 120.0), [running("a")], 100.0) is None  # already missed
    assert rule.decide(Waiting(API, 10.0, started=True), [running("a")], 100.0) is None


def test_rule_parks_only_lower_tiers_lowest_first() -> None:
    rule = PreemptionRule(ON)
    waiting = Waiting(ENTERPRISE, 0.0)
    assert rule.decide(waiting, [running("api", API), running("ent", ENTERPRISE)], 0.0) is None
    jobs = [running("light", LIGHT, boundary=1.0), running("free", FREE, boundary=50.0)]
    assert rule.decide(waiting, jobs, 0.0).key == "free"  # lowest tier beats sooner boundary
    gap3 = PreemptionRule(ON.model_copy(update={"min_tier_gap": 3}))
    assert gap3.decide(waiting, [running("light", LIGHT)], 0.0) is None  # light is 2 below
    assert gap3.decide(waiting, [running("free", FREE)], 0.0).key == "free"


def test_rule_respects_min_gap_max_parks_and_the_deadline() -> None:
    rule = PreemptionRule(ON)  # min_gap_s 600, max_parks 3
    waiting = Waiting(API, 0.0)  # deadline = now + 120
    later = {"boundary": 1010.0, "finish": 2000.0}
    assert rule.decide(waiting, [running("a", last_parked_s=500.0, **later)], 1000.0) is None
    assert rule.decide(waiting, [running("a", last_parked_s=400.0, **later)], 1000.0).key == "a"
    assert rule.decide(waiting, [running("a", parks=3)], 0.0) is None
    assert rule.decide(waiting, [running("a", boundary=121.0)], 0.0) is None  # too late to help
    assert rule.decide(waiting, [running("a", boundary=120.0)], 0.0).key == "a"


def test_rule_leaves_a_job_about_to_finish_alone() -> None:
    rule = PreemptionRule(ON)  # min_remaining_s 30, min_remaining_fraction 0.1 (of 1000 s)
    waiting = Waiting(API, 0.0)  # deadline 120
    assert rule.decide(waiting, [running("a", boundary=10.0, finish=130.0)], 0.0).key == "a"
    assert rule.decide(waiting, [running("a", boundary=30.0, finish=121.0)], 0.0) is None
    loose = PreemptionRule(ON.model_copy(update={"min_remaining_fraction": 0.0}))
    assert loose.decide(waiting, [running("a", boundary=90.0, finish=125.0)], 0.0).key == "a"
    assert loose.decide(waiting, [running("a", boundary=100.0, finish=125.0)], 0.0) is None


def test_rule_for_several_heads_gives_each_its_own_slot() -> None:
    rule = PreemptionRule(ON)
    jobs = [running("a", boundary=5.0), running("b", boundary=8.0), running("c", boundary=9.0)]
    two = [Waiting(API, 0.0), Waiting(API, 10.0)]
    assert [p.key for p in rule.decide_each(two, jobs, 0.0)] == ["a", "b"]
    # A job that ends in time serves the first head; only the second needs a park.
    ending = [running("a", finish=100.0), *jobs[1:]]
    assert [p.key for p in rule.decide_each(two, ending, 0.0)] == ["b"]
    # A late head ahead in line claims a slot (it never causes a park); b parks for the next.
    late_first = [Waiting(API, 500.0), Waiting(API, 10.0)]
    assert [p.key for p in rule.decide_each(late_first, jobs, 0.0)] == ["b"]
    assert rule.decide_each(two, [], 0.0) == []


def test_running_from_progress_reports() -> None:
    r = Running.from_progress("a", FREE, 10, 30, 4.0, last_step_s=100.0, parks=1)
    assert (r.next_boundary_s, r.finish_s, r.parks) == (104.0, 180.0, 1)
    last = Running.from_progress("a", FREE, 29, 30, 4.0, last_step_s=100.0)
    assert (last.next_boundary_s, last.finish_s) == (math.inf, 104.0)
    unknown = Running.from_progress("a", FREE, 0, 30, math.inf, last_step_s=100.0)
    assert PreemptionRule(ON).decide(Waiting(API, 0.0), [unknown], 100.0) is None


def test_preemption_config_is_off_by_default_and_validated() -> None:
    assert parse_config({}).preemption == PreemptionConfig()
    assert not PreemptionConfig().enabled
    cfg = parse_config({"preemption": {"enabled": True, "overhead_s": 5}})
    assert cfg.preemption.enabled and cfg.preemption.overhead_s == 5.0
    with pytest.raises(ConfigError, match="preemption.min_gap_s"):
        parse_config({"preemption": {"min_gap_s": -1}})
    with pytest.raises(ConfigError, match="preemption.overhed_s"):
        parse_config({"preemption": {"overhed_s": 1}})


# ---- the replay ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("seed", range(4))
def test_with_preemption_off_the_replay_equals_the_plain_one(name, seed) -> None:
    rows = random_rows(seed)
    trace = trace_of(rows)
    capacity = [(0.0, 2), (rows[50][0] + 0.5, 4), (rows[100][0] + 0.5, 1)]
    tiers = [
        TierConfig(
            name=c.name,
            max_wait_s=c.max_wait_s / 20,
            weight=c.weight,
            shed_ratio=None if c.name == "api" or seed % 2 else 3.0,
        )
        for c in default_tiers()
    ]
    specs = tier_specs(tiers)
    want = _replay(trace, capacity, make_policy(name), specs, False)
    off = PreemptionRule(PreemptionConfig(enabled=False, overhead_s=5.0))
    got = replay_preemptive(trace, capacity, make_policy(name), specs, off)
    assert got.start == pytest.approx(want, nan_ok=True, rel=0, abs=0)
    assert got.preemptions == [0] * len(rows) and got.parked == []
    pairs = zip(want, trace.service_s, strict=True)
    ended = [s + d if not math.isnan(s) else math.nan for s, d in pairs]
    assert got.end == pytest.approx(ended, nan_ok=True, rel=0, abs=0)
    # And simulate() gives the same summary either way, plus its preemption section.
    plain = simulate(trace, capacity, make_policy(name), tiers, fair_share=False)
    again = simulate(trace, capacity, make_policy(name), tiers, PreemptionConfig())
    assert again.pop("preemption")["parks"] == 0
    assert again == plain


def test_an_api_job_on_a_pool_of_long_free_jobs_makes_its_slo_only_by_parking() -> None:
    # Four slots busy with 1000 s free jobs (30 steps of 33.3 s); an api job arrives at 10 s.
    rows = [(0.0, "free", 1000.0)] * 4 + [(10.0, "api", 60.0)]
    trace = trace_of(rows)
    policy = make_policy(DEFAULT_POLICY)
    without = simulate(trace, [(0.0, 4)], policy)
    with_ = simulate(trace, [(0.0, 4)], make_policy(DEFAULT_POLICY), preemption=ON)
    assert without["tiers"]["api"]["wait_max_s"] == 990.0
    assert without["tiers"]["api"]["attainment"] == 0.0
    assert with_["tiers"]["api"]["attainment"] == 1.0
    assert with_["tiers"]["api"]["wait_max_s"] == pytest.approx(1000 / 30 - 10, abs=1e-3)
    assert with_["preemption"]["parks"] == 1 and with_["preemption"]["parks_by_tier"]["free"] == 1
    # The parked job ends as much later as the api job ran (60 s) plus the overhead (0 s).
    assert with_["preemption"]["parked_delay_max_s"] == pytest.approx(60.0, abs=1e-3)
    assert with_["tiers"]["free"] == without["tiers"]["free"]  # waits count to the first start


@pytest.mark.parametrize("overhead", [0.0, 7.0])
def test_parking_happens_at_a_step_boundary_and_costs_the_overhead(overhead) -> None:
    # One slot; a 300 s free job of 30 steps (10 s each); an api job arrives at 5 s.
    config = ON.model_copy(update={"overhead_s": overhead})
    got = replay([(0.0, "free", 300.0), (5.0, "api", 50.0)], [(0.0, 1)], config)
    assert got.parked == [(10.0, 0, 1)]  # the first boundary after 5 s, one step done
    assert got.start == [0.0, 10.0] and got.preemptions == [1, 0]
    # The api job runs 10..60; the free job resumes at 60 and pays the overhead.
    assert got.end == [60.0 + overhead + 290.0, 60.0]


def test_parks_happen_only_at_step_boundaries_on_random_traces() -> None:
    rows = random_rows(3, 300)
    steps = [random.Random(i).randint(1, 40) for i in range(len(rows))]
    tiers = {c.name: c.max_wait_s / 20 for c in default_tiers()}
    specs = tier_specs(
        [TierConfig(name=k, max_wait_s=v, weight=SPECS[k].weight) for k, v in tiers.items()]
    )
    config = PreemptionConfig(enabled=True, overhead_s=3.0, min_gap_s=0.0, min_remaining_s=0.0)
    trace = trace_of(rows, steps)
    got = replay_preemptive(trace, [(0.0, 3)], make_policy("strict"), specs, PreemptionRule(config))
    assert len(got.parked) > 10
    seen: set[int] = set()
    for at, j, done in got.parked:
        step_s = trace.service_s[j] / steps[j]
        assert 0 < done < steps[j]
        if j not in seen:  # the first park: a whole number of steps after the first start
            k = (at - got.start[j]) / step_s
            assert k == pytest.approx(done, abs=1e-6)
            seen.add(j)
    for j, n in enumerate(got.preemptions):
        # Every job ends: its total time is its service plus the overhead once per park,
        # and never before its first start plus its service.
        assert got.end[j] >= got.start[j] + trace.service_s[j] + n * 3.0 - 1e-6


def test_a_parked_job_is_not_parked_again_within_min_gap() -> None:
    # One slot, a 3000 s free job of 300 steps (10 s each); api jobs at 5 s and 80 s. The
    # first parks it at 10 s and runs to 60 s; the free job resumes, and at 80 s (a boundary)
    # may be parked again only if 70 s is at least min_gap_s.
    rows = [(0.0, "free", 3000.0), (5.0, "api", 50.0), (80.0, "api", 50.0)]
    once = replay(rows, [(0.0, 1)], ON.model_copy(update={"min_gap_s": 600.0}), default_steps=300)
    assert once.preemptions[0] == 1 and once.start[2] == pytest.approx(3050.0)
    twice = replay(rows, [(0.0, 1)], ON.model_copy(update={"min_gap_s": 70.0}), default_steps=300)
    assert twice.preemptions[0] == 2 and twice.start[2] == pytest.approx(80.0)
    assert [at for at, _, _ in twice.parked] == pytest.approx([10.0, 80.0])


def test_a_parked_job_keeps_its_original_enqueue_time() -> None:
    # Free job A (t=0) runs; free job B queues at 2 s; api C at 5 s parks A at 10 s. When C
    # ends at 60 s, A goes before B: it is the older (strict is FIFO inside a tier).
    got = replay([(0.0, "free", 300.0), (2.0, "free", 100.0), (5.0, "api", 50.0)], [(0.0, 1)])
    assert got.preemptions == [1, 0, 0]
    assert got.end[0] == 60.0 + 290.0
    assert got.start[1] == got.end[0]


def test_a_trace_may_name_steps_per_job(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "arrival_s,tenant,tier,model,service_s,steps\n0,a,free,m,300,1\n5,b,api,m,5,4\n"
    )
    trace = read_trace(path, list(SPECS))
    assert trace.steps == [1, 4]
    got = replay_preemptive(trace, [(0.0, 1)], make_policy("strict"), SPECS, PreemptionRule(ON))
    assert got.preemptions == [0, 0]  # a one-step job has no boundary to park at
    path.write_text("arrival_s,tenant,tier,model,service_s,steps\n0,a,free,m,300,0.5\n")
    with pytest.raises(TraceError, match="row 2: column steps: '0.5' must be a whole number"):
        read_trace(path, list(SPECS))


def test_cli_simulate_preempt(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.csv").write_text(
        "arrival_s,tenant,tier,model,service_s\n0,a,free,m,300\n5,b,api,m,50\n"
    )
    (tmp_path / "c.csv").write_text("time_s,slots\n0,1\n")
    args = ["simulate", "--trace", str(tmp_path / "t.csv"), "--capacity", str(tmp_path / "c.csv")]
    assert main([*args, "--preempt", "--park-overhead-s", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["preemption"]["parks"] == 1 and result["preemption"]["overhead_s"] == 4.0
    assert result["tiers"]["api"]["wait_max_s"] == 5.0
    assert main(args) == 0
    assert "preemption" not in json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main([*args, "--preempt", "--park-overhead-s", "-1"])
