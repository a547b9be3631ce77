"""Shared test settings. Unit and sim tests must never start Ray (docs/architecture.md, Tests).

Ray reads ``RAY_AUTH_MODE`` when it is first imported, and the integration session's driver
joins its multi-node cluster by address, which needs token auth: set it before any test module
imports Ray.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")


# ---- slow self-contained files in child processes (tests/child_runs.py) ---------------------

import pytest  # noqa: E402

from tests import child_runs  # noqa: E402

_CHILDREN_WANTED: list[str] = []


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    wrappers = [item for item in items if item.nodeid.startswith(child_runs.WRAPPER)]
    if wrappers:  # last: each awaits a child started when the sim and unit tests begin
        items[:] = [item for item in items if item not in wrappers] + wrappers
        _CHILDREN_WANTED[:] = [w.callspec.params["name"] for w in wrappers]  # type: ignore[attr-defined]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start the children beside the sim and unit tests, which start no Ray: by then the
    integration package's cluster has stopped (its fixture is package-scoped)."""
    if _CHILDREN_WANTED and item.nodeid.startswith(child_runs.BESIDE):
        for name in _CHILDREN_WANTED:
            child_runs.start(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    child_runs.stop_all()
