"""The names of pipeline stages and the rule a declared pipeline follows (docs/pipelines.md).

Here, at the bottom of the layers, because configuration validates pipelines; the job
package re-exports them (``luma_ray.jobs.stages``).
"""

from __future__ import annotations

from collections.abc import Sequence

GENERATE = "generate"
"""The first stage of every pipeline: the video model itself."""
QA = "qa"
"""A stage whose verdict can send the job back to ``generate`` with a new seed."""
CAPTION = "caption"
THUMBNAIL = "thumbnail"
KNOWN_STAGES = (GENERATE, QA, CAPTION, THUMBNAIL)
DEFAULT_PIPELINE = (GENERATE, QA, CAPTION, THUMBNAIL)
"""luma-tiny's pipeline unless the runtime config says otherwise. The shipped reference weights
pass the checker on 95 % of held-out grammar prompts (docs/models.md), so QA regenerates about
one grammar video in twenty with the next seed; prompts outside the grammar pass QA as they
are."""


def check_pipeline(model: str, stages: Sequence[str]) -> None:
    """Raise ``ValueError`` (config validation) unless ``stages`` is a valid pipeline."""
    if not stages or stages[0] != GENERATE:
        raise ValueError(f"pipeline of {model!r} must start with {GENERATE!r}")
    if len(set(stages)) != len(stages):
        raise ValueError(f"pipeline of {model!r} names a stage twice: {list(stages)}")
    unknown = sorted(set(stages) - set(KNOWN_STAGES))
    if unknown:
        raise ValueError(
            f"pipeline of {model!r}: unknown stage(s) {unknown}; use {list(KNOWN_STAGES)}"
        )
