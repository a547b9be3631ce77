"""Execute the notebooks and commit them with their outputs; check that they are up to date.

    python scripts/execute_notebooks.py [NOTEBOOK ...] [--timeout 600]   # execute, write back
    python scripts/execute_notebooks.py --check [NOTEBOOK ...]           # exit 1 if stale

Without NOTEBOOK: every notebooks/*.ipynb. Each notebook runs top to bottom in a fresh
``python3`` kernel (nbclient) from its own temporary folder, with this checkout first on
PYTHONPATH (as tests/notebooks does), and is written back with its outputs. Volatile metadata
(execution timestamps, the interpreter's patch version) is left out, so a rerun that gives the
same outputs gives no diff. The sha256 of the code cells' sources goes into the notebook's
metadata (``luma_ray.sources_sha256``): ``--check`` (and tests/unit/test_notebook_outputs.py)
fails a notebook whose code changed after it was executed, a code cell without output, an
error output, and a figure notebook without an ``image/png`` output.

01_quickstart and 03_rollout start a small local Ray cluster each; 02_scheduling runs pure
simulations (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SCRIPT = "python scripts/execute_notebooks.py"
# Notebooks whose point is a figure: they must carry at least one rendered image.
FIGURES = frozenset({"02_scheduling.ipynb"})
# Cell metadata that nbclient or Jupyter add on every run (timestamps, UI state).
VOLATILE_CELL_KEYS = ("execution", "collapsed", "scrolled", "ExecuteTime")
# Notebook metadata kept; anything else (widget state, kernel ids of a Jupyter session) goes.
KEPT_METADATA = ("kernelspec", "language_info", "luma_ray")


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def sources_hash(notebook: dict[str, Any]) -> str:
    """The sha256 of the code cells' sources, in order (markdown edits do not count)."""
    sources = [_text(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def problems(notebook: dict[str, Any], name: str) -> list[str]:
    """What makes the committed ``notebook`` (a JSON mapping) stale or incomplete; [] if none."""
    rerun = f"run `{SCRIPT} notebooks/{name}` and commit the result"
    recorded = notebook.get("metadata", {}).get("luma_ray", {}).get("sources_sha256")
    if recorded is None:
        return [f"{name}: not executed by {SCRIPT}; {rerun}"]
    found = []
    if recorded != sources_hash(notebook):
        found.append(f"{name}: code cells changed after the notebook was executed; {rerun}")
    images = 0
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    for number, cell in enumerate(code_cells, start=1):
        outputs = cell.get("outputs", [])
        if cell.get("execution_count") != number:
            found.append(f"{name}: code cell {number} was not executed in order; {rerun}")
        if not outputs:
            found.append(f"{name}: code cell {number} has no output; {rerun}")
        if any(o.get("output_type") == "error" for o in outputs):
            found.append(f"{name}: code cell {number} raised an error; fix it, then {rerun}")
        volatile = [k for k in VOLATILE_CELL_KEYS if k in cell.get("metadata", {})]
        if volatile:
            found.append(f"{name}: code cell {number} carries volatile metadata {volatile}")
        images += sum("image/png" in o.get("data", {}) for o in outputs)
    if name in FIGURES and images == 0:
        found.append(f"{name}: no image/png output (a figure that did not render); {rerun}")
    return found


def strip_volatile(notebook: Any) -> None:
    """Drop what changes on every run without the outputs changing (in place)."""
    for cell in notebook["cells"]:
        for key in VOLATILE_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
    metadata = notebook["metadata"]
    for key in [k for k in metadata if k not in KEPT_METADATA]:
        del metadata[key]
    metadata.get("language_info", {}).pop("version", None)


def execute(path: Path, timeout: int) -> None:
    """Run ``path`` in a fresh kernel and write it back with outputs, stripped and hashed."""
    import nbclient  # dev extra; --check needs neither
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix=f"luma-{path.stem}-") as folder:
        client = nbclient.NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": folder}},
        )
        client.execute()  # raises CellExecutionError naming the cell that failed
    strip_volatile(notebook)
    notebook.metadata["luma_ray"] = {"sources_sha256": sources_hash(notebook)}
    found = problems(json.loads(nbformat.writes(notebook)), path.name)
    if found:
        raise SystemExit("\n".join(found))
    nbformat.write(notebook, path)


def _paths(names: Iterable[str]) -> list[Path]:
    paths = [Path(n).resolve() for n in names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            raise SystemExit(f"{p}: not a notebook file; pass paths like notebooks/02_*.ipynb")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: every notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="check only; exit 1 if stale")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = _paths(args.notebooks)
    if args.check:
        found = [m for p in paths for m in problems(json.loads(p.read_text()), p.name)]
        print("\n".join(found) or f"{len(paths)} notebooks up to date")
        return 1 if found else 0
    # The kernel (and the Ray cluster it starts) imports this checkout's luma_ray.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    for path in paths:
        print(f"executing {path.name}", flush=True)
        execute(path, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
