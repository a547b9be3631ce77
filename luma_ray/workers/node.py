"""What a worker knows about its node: its labels, its cluster, and whether it is leaving.

Who calls this: the Serve replica (``deployment.py``) reads the labels once (the cluster
counts for dispatch limits) and polls :func:`leaving_at` every second. A node leaves when
Ray drains it (``ray drain-node``, the autoscaler, or the Slurm script in cluster_configs/
when an allocation ends or gets SIGTERM) or when the deadline in its ``luma.io/leave-by``
label (epoch seconds, set at ``ray start`` by a burst job) comes within its
``luma.io/leave-notice-s`` label (seconds; the Slurm script's drain margin), or
``LEAVE_NOTICE_S`` without one.
The worker then stops pulling and finishes or hands back its job (``WorkerLoop.leave``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray

log = logging.getLogger(__name__)

CLUSTER_LABEL = "luma.io/cluster"
"""The Ray node label that names a node's cluster (cluster_configs/ set it on every node)."""
LEAVE_BY_LABEL = "luma.io/leave-by"
LEAVE_NOTICE_LABEL = "luma.io/leave-notice-s"
DEFAULT_CLUSTER = "local"
LEAVE_NOTICE_S = 600.0
"""With a ``luma.io/leave-by`` label, workers start leaving this long before it."""


@dataclass(frozen=True)
class Leaving:
    """The node is leaving; ``deadline_s`` (epoch seconds) or None for no deadline."""

    deadline_s: float | None
    why: str


def node_labels() -> dict[str, str]:
    """This node's Ray labels (``luma.io/cluster``, ``luma.io/accelerator``, ...)."""
    labels = ray.get_runtime_context().get_node_labels()
    return {str(k): str(v) for k, v in labels.items()}


def leaving_at(labels: dict[str, str], now_s: float | None = None) -> Leaving | None:
    """Whether this node is leaving, and by when; None while it stays."""
    now_s = time.time() if now_s is None else now_s
    draining = _draining_deadline_ms()
    if draining is not None:
        deadline = draining / 1000 if draining > 0 else None
        return Leaving(deadline, "Ray is draining this node")
    return leave_by_label(labels, now_s)


def leave_by_label(labels: dict[str, str], now_s: float) -> Leaving | None:
    """Leaving by the node's ``luma.io/leave-by`` label: from its notice before that deadline
    (``luma.io/leave-notice-s``, else ``LEAVE_NOTICE_S``); None without the label or before."""
    leave_by = labels.get(LEAVE_BY_LABEL)
    if leave_by is None:
        return None
    try:
        deadline_s = float(leave_by)
    except ValueError:
        log.warning("node label %s=%r is not epoch seconds; ignored", LEAVE_BY_LABEL, leave_by)
        return None
    notice_s = LEAVE_NOTICE_S
    if LEAVE_NOTICE_LABEL in labels:
        try:
            notice_s = max(0.0, float(labels[LEAVE_NOTICE_LABEL]))
        except ValueError:
            log.warning(
                "node label %s=%r is not seconds; using %g",
                LEAVE_NOTICE_LABEL,
                labels[LEAVE_NOTICE_LABEL],
                LEAVE_NOTICE_S,
            )
    if now_s >= deadline_s - notice_s:
        return Leaving(deadline_s, f"the node's {LEAVE_BY_LABEL} deadline is near")
    return None


def _draining_deadline_ms() -> int | None:
    """This node's drain deadline from the GCS (0: draining without a deadline)."""
    node_id = ray.get_runtime_context().get_node_id()
    try:
        gcs = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
        draining: dict[str, int] = gcs.get_draining_nodes()
    except Exception:
        log.debug("cannot read draining nodes", exc_info=True)
        return None
    return draining.get(node_id)
