"""The committed notebooks are executed and up to date (issue 17, item 7).

scripts/execute_notebooks.py runs them and records the sha256 of their code cells; here,
without a kernel, each committed notebook must carry an output for every code cell, no error,
that hash matching its code (an edited cell not re-executed fails), and the scheduling
notebook its figures as image/png. tests/notebooks still executes them from scratch.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.project_scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "execute_notebooks.py"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _load_script() -> ModuleType:
    return load_script("scripts/execute_notebooks.py")


script = _load_script()


def _read(name: str) -> dict[str, Any]:
    return json.loads((REPO / "notebooks" / name).read_text())


def _code_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_and_up_to_date(path: Path) -> None:
    assert script.problems(json.loads(path.read_text()), path.name) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_has_an_output(path: Path) -> None:
    notebook = json.loads(path.read_text())
    empty = [i for i, c in enumerate(_code_cells(notebook), 1) if not c.get("outputs")]
    assert empty == []


def test_the_scheduling_notebook_shows_its_plots() -> None:
    outputs = [o for c in _code_cells(_read("02_scheduling.ipynb")) for o in c["outputs"]]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # The waits per tier, the tail_target frontier and the sweep: three figures.
    assert len(images) >= 3
    # The sweep's table of per-trace ratios is there too.
    tables = [
        script._text(o["data"]["text/markdown"])
        for o in outputs
        if "text/markdown" in o.get("data", {})
    ]
    assert any("attainment / strict's" in t for t in tables)


def test_editing_a_cell_without_executing_is_caught() -> None:
    notebook = _read("02_scheduling.ipynb")
    edited = copy.deepcopy(notebook)
    cell = _code_cells(edited)[-1]
    cell["source"] = script._text(cell["source"]) + "\nprint('edited')"
    found = script.problems(edited, "02_scheduling.ipynb")
    assert any("changed after the notebook was executed" in m for m in found)
    # A markdown edit is not a code change.
    prose = copy.deepcopy(notebook)
    next(c for c in prose["cells"] if c["cell_type"] == "markdown")["source"] = "# edited"
    assert script.problems(prose, "02_scheduling.ipynb") == []


def test_a_figure_that_did_not_render_is_caught() -> None:
    notebook = _read("02_scheduling.ipynb")
    for cell in _code_cells(notebook):
        for out in cell["outputs"]:
            out.get("data", {}).pop("image/png", None)
    found = script.problems(notebook, "02_scheduling.ipynb")
    assert any("no image/png output" in m for m in found)


def test_outputs_cleared_or_never_executed_are_caught() -> None:
    notebook = _read("01_quickstart.ipynb")
    cleared = copy.deepcopy(notebook)
    for cell in _code_cells(cleared):
        cell["outputs"], cell["execution_count"] = [], None
    found = script.problems(cleared, "01_quickstart.ipynb")
    assert any("has no output" in m for m in found)
    assert any("not executed in order" in m for m in found)
    del notebook["metadata"]["luma_ray"]
    assert "not executed by" in script.problems(notebook, "01_quickstart.ipynb")[0]


def test_volatile_metadata_is_stripped() -> None:
    notebook = _read("03_rollout.ipynb")
    assert set(notebook["metadata"]) <= set(script.KEPT_METADATA)
    assert "version" not in notebook["metadata"].get("language_info", {})
    timed = copy.deepcopy(notebook)
    _code_cells(timed)[0]["metadata"]["execution"] = {"iopub.execute_input": "2026-01-01"}
    timed["metadata"]["widgets"] = {}
    assert any("volatile" in m for m in script.problems(timed, "03_rollout.ipynb"))
    script.strip_volatile(timed)
    assert script.problems(timed, "03_rollout.ipynb") == []


def test_check_mode_exits_zero_on_the_committed_notebooks() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(NOTEBOOKS)} notebooks up to date" in done.stdout
