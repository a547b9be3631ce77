"""Pipelines of stages: a job may run as a chain (generate → qa → caption → thumbnail), each
stage served by its own pool of workers (docs/pipelines.md).

Pure names and rules only: which queue a job's current stage waits in, and which stage comes
next. The scheduler core (``scheduler/pipeline.py``) moves jobs along the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from luma_ray.config.pipelines import (
    CAPTION,
    DEFAULT_PIPELINE,
    GENERATE,
    KNOWN_STAGES,
    QA,
    THUMBNAIL,
    check_pipeline,
)

__all__ = [
    "CAPTION",
    "DEFAULT_PIPELINE",
    "GENERATE",
    "KNOWN_STAGES",
    "QA",
    "THUMBNAIL",
    "base_model",
    "check_pipeline",
    "next_stage",
    "stage_queue",
]


def base_model(model: str) -> str:
    """``luma-tiny`` for ``luma-tiny`` and for a pinned ``luma-tiny@v3``."""
    return model.partition("@")[0]


def stage_queue(model: str, stage: str | None) -> str:
    """The queue key a job of ``model`` waits in at ``stage``: the model itself (pinned
    form included) for ``generate`` or no pipeline, ``<model>:<stage>`` otherwise (any
    version: a stage does not depend on the model version that generated the video)."""
    if stage is None or stage == GENERATE:
        return model
    return f"{base_model(model)}:{stage}"


def next_stage(stages: Sequence[str], stage: str | None) -> str | None:
    """The stage after ``stage`` in ``stages``; None when it is the last (or no pipeline)."""
    if stage is None or stage not in stages:
        return None
    at = list(stages).index(stage)
    return stages[at + 1] if at + 1 < len(stages) else None
