"""The slow self-contained test files, run in child pytest processes (tests/child_runs.py).

Each child runs its files with ``python -m pytest``; this test passes when the child exits 0
having passed all of its tests, and shows the child's output otherwise. In the whole suite the
root conftest starts the child when the sim and unit tests begin and runs this test last, to
await it; selected alone, this test starts its child itself.

- ``slurm_burst``: ``slurm_burst_cases.py``, the Slurm burst script on a real Slurm (a cancel and
  a time limit both drain the burst node and the job resumes on the head's pool). Its cases start
  a Ray cluster in their own process, which a process connected to the integration session's
  cluster cannot; their head keeps off every port that cluster may hold.
"""

from __future__ import annotations

import pytest

from tests import child_runs

pytestmark = pytest.mark.timeout(2400)


@pytest.mark.parametrize("name", sorted(child_runs.CHILDREN))
def test_self_contained_files_pass_in_a_child_process(name: str) -> None:
    run = child_runs.start(name)
    rc, out = run.wait(timeout_s=2300)
    assert rc == 0, f"{name}: exit {rc}\n{out[-8000:]}"
    assert f"{child_runs.EXPECTED_PASSED[name]} passed" in out, out[-4000:]
