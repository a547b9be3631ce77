"""A worker replica that Serve stops (downscale, drain, upgrade): its running job goes back."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: stage workers import this module without the loop's deps
    from luma_ray.workers.loop import WorkerLoop

STOP_WAIT_S = 4.0
"""How long a stopping replica waits for its running job to reach a step and be handed back
(below the deployments' 5 s graceful shutdown; past it, the job's lease expires instead)."""


def stop_and_hand_back(
    loop: WorkerLoop, thread: threading.Thread | None, wait_s: float = STOP_WAIT_S
) -> None:
    """A replica Serve stops (downscale, drain, upgrade): stop ``loop``, whose running job goes
    back at its next step, and wait up to ``wait_s`` for ``thread`` (the loop's) to get there:
    Serve ends the replica's process once its destructor returns."""
    loop.stop()
    if thread is not None and thread is not threading.current_thread():
        thread.join(wait_s)
