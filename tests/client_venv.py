"""A new virtual environment with only ``luma_ray[client]`` installed (from the package index),
for the tests that show the client needs no Ray: tests/unit/test_install_extras.py and
tests/integration/test_client_extra.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def client_venv(root: Path) -> tuple[Path, Run]:
    """Install ``<this checkout>[client]`` into ``root/venv``; its bin folder, and a runner
    of commands with that venv first on PATH (and no PYTHONPATH pointing here)."""
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "luma_ray", source / "luma_ray", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env = {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PATH": f"{bin_dir}:{env['PATH']}"}

    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )

    installed = run(str(bin_dir / "pip"), "install", "-q", f"{source}[client]", timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return bin_dir, run
