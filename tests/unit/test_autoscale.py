"""The queue-driven autoscaling policy, pure and as Serve calls it (with a stand-in context)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from luma_ray.config import AutoscalingConfig, parse_config
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Backlog, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.workers.autoscale import (
    BACKLOG,
    BUSY,
    SERVICE_S,
    TARGET_S,
    desired_replicas,
    queue_policy,
)

from .test_worker_loop import LIMITS, Clock


@pytest.mark.parametrize(
    ("backlog", "busy", "service_s", "target_s", "want"),
    [
        (0, 0, 10, 60, 0),  # idle: Serve keeps the minimum
        (0, 3, 10, 60, 3),  # the busy ones stay
        (12, 0, 10, 60, 2),  # 120 s of work in 60 s
        (13, 0, 10, 60, 3),
        (12, 2, 10, 60, 4),
        (1000, 0, 50, 120, 417),
    ],
)
def test_desired_replicas(backlog, busy, service_s, target_s, want) -> None:
    assert desired_replicas(backlog, busy, service_s, target_s) == want


def test_queue_policy_reads_the_replicas_metrics() -> None:
    ctx = SimpleNamespace(
        target_num_replicas=1,
        aggregated_metrics={
            BACKLOG: {"r1": 12.0, "r2": 11.0},
            BUSY: {"r1": 1.0, "r2": 1.0},
            SERVICE_S: {"r1": 10.0, "r2": 10.0},
            TARGET_S: {"r1": 60.0, "r2": 60.0},
        },
    )
    assert queue_policy(ctx) == (4, {"desired": 4})
    assert queue_policy(SimpleNamespace(target_num_replicas=3, aggregated_metrics={})) == (3, {})


def test_backlog_counts_every_queue_of_the_model(tmp_path: Path) -> None:
    svc = SchedulerService(
        parse_config({}), Journal(tmp_path / "j.sqlite"), {"luma-tiny": LIMITS}, Clock(), None
    )
    for tier in ("api", "free", "free"):
        svc.submit(SubmitRequest(prompt="p", tier=tier))
    assert svc.backlog("luma-tiny").queued == 3
    svc.pull("w", "local", ["luma-tiny"])
    assert svc.backlog("luma-tiny") == Backlog(queued=2, service_s=10.0)
    assert svc.backlog("other").queued == 0


def test_autoscaling_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_replicas 1 is below min_replicas 2"):
        AutoscalingConfig(min_replicas=2, max_replicas=1)
