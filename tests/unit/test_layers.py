"""The layer contract (``.importlinter``) holds for this tree, and it would catch a breach:
each check runs ``lint-imports`` on a copy of the package with one bad import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy shadows the installed package
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--config",
            str(tree / ".importlinter"),
            "--no-cache",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "luma_ray", tree / "luma_ray", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module,line,contract",
    [
        ("luma_ray/scheduler/upward.py", "from luma_ray.api import app\n", "Layers"),
        ("luma_ray/jobs/upward.py", "import luma_ray.runtime.actor\n", "Layers"),
        ("luma_ray/notify/upward.py", "from luma_ray.workers import loop\n", "Layers"),
        ("luma_ray/scheduler/gpu.py", "import torch\n", "Pure core"),
        ("luma_ray/sim/cluster.py", "import ray\n", "Pure core"),
    ],
)
def test_an_upward_or_impure_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = copy_tree(tmp_path)
    (tree / module).write_text(f'"""A deliberately bad module."""\n\n{line}')
    result = lint(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(contract in row for row in broken), result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
