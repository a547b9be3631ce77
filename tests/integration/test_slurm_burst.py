"""The Slurm burst cases (slurm_burst_cases.py) in a pytest process of their own.

They start a Ray cluster in the test process (``ray.cluster_utils.Cluster`` and ``ray.init``),
which cannot happen in this session's process: it is already connected to the session's
cluster, and Ray fails to start a second GCS there. So this test runs them in a child
``python -m pytest`` and passes when both pass; the child's output is shown on failure. Their
head keeps off every port the session's cluster may hold (Ray's default agent port included);
run beside an idle session cluster, both passed (4 min 20 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

pytestmark = pytest.mark.timeout(1500)


def test_slurm_bursts_drain_on_cancel_and_time_limit_and_jobs_resume() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(HERE / "slurm_burst_cases.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert "2 passed" in done.stdout, done.stdout[-3000:]
