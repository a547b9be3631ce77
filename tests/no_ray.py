"""The fixture that keeps unit and simulator tests off Ray: any ray.init fails the test."""

from __future__ import annotations

import pytest


class RayForbidden(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ray
    except ImportError:  # Ray not installed: nothing can start it either
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise RayForbidden("unit tests must not call ray.init; move this test to integration")

    monkeypatch.setattr(ray, "init", refuse)
