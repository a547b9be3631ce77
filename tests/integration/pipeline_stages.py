"""Stand-in stages for the pipeline test (the reference check and captioner are another
branch's work): the session's stage pools load them by ``stage_impl``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from luma_ray.workers.stages import Captioner, QualityCheck

SLOW_QA = "slow-qa"
"""A prompt ``slow-qa <path>``: the first QA run of it creates ``<path>`` and then works for a
minute (the test kills its replica meanwhile); a later run finds the file and is quick."""


REJECT_ONCE = "reject-once"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()


def check(frames: np.ndarray, prompt: str) -> Verdict:
    """``slow-qa <path>`` (see ``SLOW_QA``) passes after a slow first run; ``reject-once
    <path>`` is rejected the first time (it creates ``<path>``), passed later."""
    word, _, path = prompt.partition(" ")
    flag = Path(path)
    first = word in (SLOW_QA, REJECT_ONCE) and not flag.exists()
    if first:
        flag.touch()
    if first and word == SLOW_QA:
        time.sleep(60)  # the test kills this replica long before
    if first and word == REJECT_ONCE:
        return Verdict(False, ("the first video is never good enough",))
    return Verdict(True)


def qa() -> QualityCheck:
    return QualityCheck(check)


def caption() -> Captioner:
    return Captioner(lambda frames: f"{len(frames)} frames")
