"""The pipeline test's QA stage (the session's QA pool loads it by ``stage_impl``): the
reference check, except for two prompts that script a slow first run and a first rejection."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_ray.models.reference.check import check as reference_check
from luma_ray.workers.stages import QualityCheck

SLOW_QA = "slow-qa"
"""A prompt ``slow-qa <path>``: the first QA run of it creates ``<path>`` and then works for a
minute (the test kills its replica meanwhile); a later run finds the file and is quick."""


REJECT_ONCE = "reject-once"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()


def check(frames: np.ndarray, prompt: str) -> Any:
    """``slow-qa <path>`` (see ``SLOW_QA``) passes after a slow first run; ``reject-once
    <path>`` is rejected the first time (it creates ``<path>``), passed later; any other
    prompt gets the reference check's verdict."""
    word, _, path = prompt.partition(" ")
    if word not in (SLOW_QA, REJECT_ONCE):
        return reference_check(frames, prompt)
    flag = Path(path)
    first = not flag.exists()
    if first:
        flag.touch()
    if first and word == SLOW_QA:
        time.sleep(60)  # the test kills this replica long before
    if first and word == REJECT_ONCE:
        return Verdict(False, ("the first video is never good enough",))
    return Verdict(True)


def qa() -> QualityCheck:
    return QualityCheck(check)
