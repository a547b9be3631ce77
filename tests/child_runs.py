"""Slow, self-contained test files run in child pytest processes beside the rest of the suite.

A file here starts clusters and services of its own and spends most of its time waiting on them:
the Slurm burst cases wait on Slurm's minute-granular time limit (about 4.5 minutes, most of it
idle). So, when the whole suite runs (the wrapper test ``tests/integration/test_child_runs.py``
is collected), the root conftest starts one child ``python -m pytest`` per entry of
``CHILDREN`` with the first test under ``BESIDE`` (the sim and unit tests, which start no Ray)
and moves the wrapper to the end of the run, where it waits for the child and passes when all
of the child's tests passed, showing the child's output when not. An earlier overlap with the
sim and unit tests made the burst node's ``ray start`` time out ("Failed to get node info:
Deadline Exceeded") in two runs of two; the integration cluster was still up then, beside
both. It now stops after the last integration test (its fixture is package-scoped), and the
overlap saves about three minutes (sim, unit and the child in 265 s against 442 s one after
the other).

A file here is not named ``test_*.py``, so the main session never collects it
(``slurm_burst_cases.py`` starts a Ray cluster in its own process, which the session's process,
already connected to the integration cluster, cannot). Head-node loss and ``serve deploy`` on
S3 ran here too, in a second child: on the 2-core machine, beside the unit tests and the Slurm
child, head-node loss's second ``ray start`` timed out ("the current node timed out during
startup"), so they run in the main session again.

Run alone, a file runs in-process as usual; the wrapper selected alone starts its child itself.
A child still running when the session ends (an interrupt, ``-x``) is killed with its process
group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILDREN: dict[str, tuple[str, ...]] = {
    "slurm_burst": ("tests/integration/slurm_burst_cases.py",),
}
"""Child name -> the test files it runs, in order."""

EXPECTED_PASSED = {"slurm_burst": 2}
"""How many tests each child must pass (a child that collects fewer fails its wrapper)."""

WRAPPER = "tests/integration/test_child_runs.py"
BESIDE = ("tests/sim/", "tests/unit/")
"""The children start with the first test under these folders (they start no Ray)."""


class ChildRun:
    """One child pytest process, its output in a temporary file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"luma-child-{name}-", suffix=".log")[1])
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTEST_ADDOPTS")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CHILDREN[name]],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches every child
            )
        self.started_s = time.monotonic()

    def wait(self, timeout_s: float) -> tuple[int, str]:
        """The child's exit status and output; kills it after ``timeout_s`` (status -9)."""
        try:
            rc = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = -9
        out = self.log.read_text(errors="replace")
        self.log.unlink(missing_ok=True)
        return rc, out

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


_RUNS: dict[str, ChildRun] = {}


def start(name: str) -> ChildRun:
    """Start the child ``name`` unless it was started already; the run."""
    run = _RUNS.get(name)
    if run is None:
        run = _RUNS[name] = ChildRun(name)
    return run


def stop_all() -> None:
    for run in _RUNS.values():
        run.stop()
