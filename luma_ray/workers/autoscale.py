"""Queue-driven autoscaling of a worker pool, as a Ray Serve custom autoscaling policy.

Who calls this: Serve's controller calls :func:`queue_policy` for every pool deployed with
``autoscaling`` (``launch.pool_application``), on its control loop. Each replica reports, through
Serve's custom metrics (``ModelWorker.record_autoscaling_stats``), the scheduler's backlog for
its model, the model's measured service time, whether it is busy, and the pool's target drain
time. The policy asks for the replicas that would finish the running jobs and drain the backlog
within that time (:func:`desired_replicas`); Serve bounds it by the pool's ``min_replicas`` (the
warm pool) and ``max_replicas`` and scales down only after ``downscale_delay_s`` of lower
demand (the idle window). Replicas Serve cannot place yet wait as pending placement groups,
which are the resource requests Ray's autoscaler launches new nodes for (matching labels).
"""

from __future__ import annotations

import math
from typing import Any

BACKLOG, SERVICE_S, BUSY, TARGET_S = "luma_backlog", "luma_service_s", "luma_busy", "luma_target_s"


def desired_replicas(backlog: float, busy: float, service_s: float, target_s: float) -> int:
    """Replicas to keep the ``busy`` ones and run ``backlog`` jobs of ``service_s`` each
    within ``target_s``. Pure; 0 when there is nothing to do (Serve applies the minimum)."""
    if backlog <= 0 and busy <= 0:
        return 0
    drain = max(backlog, 0.0) * max(service_s, 0.0) / max(target_s, 1e-3)
    return math.ceil(max(busy, 0.0) + drain - 1e-9)


def queue_policy(ctx: Any) -> tuple[int, dict[str, Any]]:
    """Serve custom autoscaling policy: ``desired_replicas`` from the replicas' metrics."""
    metrics: dict[str, dict[Any, float]] = ctx.aggregated_metrics or {}

    def values(name: str) -> list[float]:
        return [float(v) for v in (metrics.get(name) or {}).values()]

    if not values(BACKLOG):  # no report yet: keep what we have
        return ctx.target_num_replicas, {}
    desired = desired_replicas(
        backlog=max(values(BACKLOG)),  # every replica sees the same queue
        busy=sum(values(BUSY)),
        service_s=max(values(SERVICE_S)),
        target_s=min(values(TARGET_S)),
    )
    return desired, {"desired": desired}
