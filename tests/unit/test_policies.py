"""The default policy's promises (docs/scheduling.md, "The default: slo_ratchet")."""

from __future__ import annotations

import pytest

from luma_ray.config import default_tiers
from luma_ray.errors import ConfigError
from luma_ray.scheduler.policies import DEFAULT_POLICY, make_policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.tiers import tier_specs

SPECS = tier_specs(default_tiers())
API, FREE = SPECS["api"], SPECS["free"]


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 0.65, 0.8, 1.0])
def test_missed_jobs_take_at_most_their_share_from_savable_higher_tiers(share) -> None:
    """A free backlog far past the guard (each job would set a new worst case) and a steady
    stream of savable api jobs: the free jobs get at most ``worst_share * n + 1`` of n
    dispatches, and (share > 0) not much fewer."""
    policy = make_policy(DEFAULT_POLICY, {"worst_share": share, "guard_share": min(share, 0.2)})
    book = QueueBook(SPECS)
    now, seq, n = 100_000.0, 0, 400
    for _ in range(n):  # free jobs queued 100,000 s ago: 14 SLOs, far past any guard
        book.push("free", "m", 0.0, seq)
        seq += 1
    free = 0
    for _ in range(n):
        book.push("api", "m", now - 1.0, seq)  # always one savable api job waiting
        seq += 1
        pick = book.pick(policy, ["m"], now)
        assert pick is not None
        free += pick.tier == "free"
        now += 1.0
    assert free <= share * n + 1
    assert free >= share * n - 2


def test_the_guard_follows_the_worst_ratio_served_and_forgets_it() -> None:
    policy = make_policy(DEFAULT_POLICY, {"ratchet": 0.7, "memory_s": 3600.0})
    assert policy.bands(API) == (API.max_wait_s,)  # nothing served yet: guarded once missed
    policy.on_dispatch(API, 1, 10 * API.max_wait_s, now_s=0.0)  # served at 10 SLOs
    # late from 1 SLO, guarded from 0.7 x the worst, a new record from the worst
    assert policy.bands(API) == pytest.approx(tuple(r * API.max_wait_s for r in (1, 7, 10)))
    assert policy.bands(FREE) == pytest.approx(tuple(r * FREE.max_wait_s for r in (1, 7, 10)))
    policy.on_dispatch(API, 0, 0.0, now_s=3600.0)  # one half-life later
    assert policy.bands(API) == pytest.approx(tuple(r * API.max_wait_s for r in (1, 3.5, 5)))
    policy.on_dispatch(API, 0, 0.0, now_s=5 * 3600.0)  # the worst case fades to the floor
    assert policy.bands(API) == (API.max_wait_s,)


def test_late_jobs_wait_behind_savable_ones_below_the_guard() -> None:
    policy = make_policy(DEFAULT_POLICY)
    policy.on_dispatch(FREE, 1, 10 * FREE.max_wait_s, now_s=0.0)  # guard now 7 SLOs
    book = QueueBook(SPECS)
    now = 50_000.0
    book.push("api", "m", now - 3 * API.max_wait_s, 1)  # late (3 SLOs), below the guard
    book.push("free", "m", now - 60.0, 2)  # savable
    first = book.pick(policy, ["m"], now)
    assert first is not None and first.seq == 2


def test_guarded_jobs_go_before_the_savable_jobs_of_lighter_tiers_only() -> None:
    """Past the guard but under the credit: ahead of savable free jobs, behind savable api."""
    policy = make_policy(DEFAULT_POLICY, {"guard_share": 0.0, "worst_share": 0.0})
    book = QueueBook(SPECS)
    now = 100_000.0
    book.push("light", "m", 0.0, 1)  # 27 SLOs: guarded
    book.push("free", "m", now - 60.0, 2)  # savable, lighter than light
    book.push("api", "m", now - 10.0, 3)  # savable, heavier
    assert [book.pick(policy, ["m"], now).seq for _ in range(3)] == [3, 1, 2]


@pytest.mark.parametrize(
    "params",
    [
        {"guard_share": 1.5},
        {"guard_share": 0.9, "worst_share": 0.5},
        {"ratchet": -0.1},
        {"floor": 0.5},
        {"memory_s": 0},
        {"r_cap": 3},
    ],
)
def test_bad_parameters_are_refused_with_the_name(params) -> None:
    with pytest.raises(ConfigError, match=DEFAULT_POLICY):
        make_policy(DEFAULT_POLICY, params)
