"""The no-Ray fixture holds: ray.init raises inside unit tests."""

from __future__ import annotations

import pytest


def test_ray_init_raises_in_unit_tests() -> None:
    ray = pytest.importorskip("ray")
    with pytest.raises(RuntimeError, match="must not call ray.init"):
        ray.init(address="local")


def test_pure_core_imports_no_runtime() -> None:
    """The pure core imports no ray, torch, boto3 or fastapi (checked in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import luma_ray.jobs, luma_ray.scheduler.core, luma_ray.sim.simulate, luma_ray.cli\n"
        "import luma_ray.sim.dispatch_sim, luma_ray.sim.traces, luma_ray.config\n"
        "bad = sorted(m for m in ('ray', 'torch', 'boto3', 'fastapi') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
