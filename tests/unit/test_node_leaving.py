"""The node watcher's reading of the ``luma.io/leave-by`` label a burst job sets at ``ray
start`` (cluster_configs/slurm-burst.sbatch): workers leave from the label's notice before it
(``luma.io/leave-notice-s``, the script's drain margin), else ``LEAVE_NOTICE_S`` before."""

from __future__ import annotations

import pytest

from luma_ray.workers.node import LEAVE_NOTICE_S, leave_by_label

END = 1_800_000_000.0


def test_no_label_means_the_node_stays() -> None:
    assert leave_by_label({"luma.io/burst": "true"}, END) is None


def test_the_notice_label_sets_when_workers_start_leaving() -> None:
    labels = {"luma.io/leave-by": str(int(END)), "luma.io/leave-notice-s": "30"}
    assert leave_by_label(labels, END - 31) is None  # a 2-minute allocation is usable
    leaving = leave_by_label(labels, END - 30)
    assert leaving is not None and leaving.deadline_s == END


def test_without_a_notice_label_workers_leave_the_default_notice_before() -> None:
    labels = {"luma.io/leave-by": str(int(END))}
    assert leave_by_label(labels, END - LEAVE_NOTICE_S - 1) is None
    assert leave_by_label(labels, END - LEAVE_NOTICE_S) is not None


@pytest.mark.parametrize(
    ("labels", "leaves_at_notice"),
    [
        ({"luma.io/leave-by": "soon"}, None),  # not epoch seconds: ignored
        ({"luma.io/leave-by": str(int(END)), "luma.io/leave-notice-s": "x"}, LEAVE_NOTICE_S),
        ({"luma.io/leave-by": str(int(END)), "luma.io/leave-notice-s": "-5"}, 0.0),
    ],
)
def test_bad_labels_fall_back(labels: dict[str, str], leaves_at_notice: float | None) -> None:
    if leaves_at_notice is None:
        assert leave_by_label(labels, END) is None
        return
    assert leave_by_label(labels, END - leaves_at_notice - 1) is None
    assert leave_by_label(labels, END - leaves_at_notice) is not None
