"""Per-job overhead of the four-stage pipeline (generate → qa → caption → thumbnail) over
generation alone, on luma-tiny on this machine's CPU (docs/pipelines.md).

No Ray: the scheduler service in process over a real SQLite journal, the real pull loops
(``SchedulerLeases``), the reference model loaded on CPU, the real encoder and a ``file://``
result store. Each job runs twice, interleaved in the same run: alone (a model without a
pipeline: generate, MP4 and thumbnail) and through the pipeline (generate and the MP4, then
one stage worker per stage: QA, caption, thumbnail and spritesheet). A job's time is submit
to succeeded. QA and caption use ``luma_ray.models.reference.check`` when it is installed,
else frame-statistics stand-ins of the same cost class (decode the MP4, a few numpy passes).
The model is the trained luma-tiny the pool serves (``SHIPPED_WEIGHTS``), and a job's frames
and steps default to what a served request that names neither gets (``LIMITS``): the stages'
fixed cost is then a share of the smallest generate the system runs. Larger jobs (``--frames``,
``--steps``) show how the share falls as the model's work grows.

    python benchmarks/pipeline_overhead.py [--jobs 60] [--frames 8] [--size 64x64] [--steps 4]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from luma_ray.config import parse_config
from luma_ray.jobs import JobState
from luma_ray.models.reference.model import LIMITS, LumaTiny
from luma_ray.models.reference.publish import SHIPPED_WEIGHTS
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import open_store
from luma_ray.workers.adapters import SchedulerLeases, StoreSink
from luma_ray.workers.loop import WorkerLoop
from luma_ray.workers.stage_worker import StageRunner, StageSink
from luma_ray.workers.stages import CHECK_MODULE, Captioner, QualityCheck, Thumbnailer

CHAIN = ["generate", "qa", "caption", "thumbnail"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()


def stand_in_check(frames: np.ndarray, prompt: str) -> Verdict:
    """Frozen or blank videos fail: mean brightness and frame-to-frame change."""
    motion = (
        float(np.abs(np.diff(frames.astype(np.int16), axis=0)).mean()) if len(frames) > 1 else 1.0
    )
    return Verdict(bool(frames.std() > 0.5 and motion >= 0.0))


def stand_in_caption(frames: np.ndarray) -> str:
    r, g, b = frames.reshape(-1, 3).mean(axis=0)
    return f"{len(frames)} frames, mostly rgb({r:.0f}, {g:.0f}, {b:.0f})"


class Locked:
    def __init__(self, svc: SchedulerService) -> None:
        self.svc, self.lock = svc, threading.Lock()

    def call(self, op):  # type: ignore[no-untyped-def]
        with self.lock:
            return self.svc.call(op)


class System:
    """One scheduler service and its loops, with or without the pipeline."""

    def __init__(self, root: Path, model: LumaTiny, pipeline: bool) -> None:
        config = parse_config({"pipelines": {"luma-tiny": CHAIN} if pipeline else {}})
        self.svc = SchedulerService(
            config, Journal(root / "journal.sqlite"), {"luma-tiny": LIMITS}, time.time
        )
        store = open_store((root / "results").resolve().as_uri())
        port = Locked(self.svc)
        self.loops = {
            "luma-tiny": WorkerLoop(
                SchedulerLeases(port, "gen", "local", ["luma-tiny"]),  # type: ignore[arg-type]
                model,
                StoreSink(store),
                prefetch=False,
                pull_wait_s=0.0,
            )
        }
        if pipeline:
            have_check = importlib.util.find_spec(CHECK_MODULE) is not None
            stages = {
                "qa": QualityCheck(None if have_check else stand_in_check),
                "caption": Captioner(None if have_check else stand_in_caption),
                "thumbnail": Thumbnailer(),
            }
            for name, stage in stages.items():
                self.loops[f"luma-tiny:{name}"] = WorkerLoop(
                    SchedulerLeases(port, name, "stages", [f"luma-tiny:{name}"]),  # type: ignore[arg-type]
                    StageRunner(stage, store),
                    StageSink(store),  # type: ignore[arg-type]
                    prefetch=False,
                    pull_wait_s=0.0,
                )

    def run(self, request: SubmitRequest) -> float:
        """Seconds from submit to succeeded, the loops driven one job at a time."""
        began = time.perf_counter()
        job_id = self.svc.submit(request).id
        while (view := self.svc.get(job_id)).state is not JobState.SUCCEEDED:
            assert not view.done, view
            for key, loop in self.loops.items():
                if any(q.live for (_, m), q in self.svc.core.queues.queues.items() if m == key):
                    loop.run(max_jobs=loop.stats.started + 1)
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--frames", type=int, default=LIMITS.default_frames)
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--steps", type=int, default=LIMITS.default_steps)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__} (1 thread); {args.jobs} jobs "
        f"of {args.frames} frames, {args.size}, {args.steps} steps; luma-tiny's shipped weights"
    )
    with tempfile.TemporaryDirectory(prefix="luma-pipeline-bench-") as tmp:
        root = Path(tmp)
        model = LumaTiny()
        model.load(SHIPPED_WEIGHTS, torch.device("cpu"))  # the weights the pool serves
        alone, piped = System(root / "alone", model, False), System(root / "pipe", model, True)
        request = lambda i: SubmitRequest(  # noqa: E731
            prompt=f"clip {i}",
            frames=args.frames,
            size=args.size,
            steps=args.steps,
            seed=i,
            tier="api",
        )
        alone.run(request(-1 % 2**31)), piped.run(request(-1 % 2**31))  # warm both paths up
        times_alone, times_piped = [], []
        for i in range(args.jobs):  # interleaved: drift of the machine hits both alike
            times_alone.append(alone.run(request(i)))
            times_piped.append(piped.run(request(i)))
    a, p = statistics.mean(times_alone), statistics.mean(times_piped)
    stage_busy = {
        k: round(v.stats.busy_s / (args.jobs + 1) * 1000, 1) for k, v in piped.loops.items()
    }
    for what, mean, times in (
        ("generation alone", a, times_alone),
        ("4-stage pipeline", p, times_piped),
    ):
        median = statistics.median(times)
        print(f"{what}: mean {mean * 1000:.1f} ms/job, median {median * 1000:.1f} ms")
    print(f"busy per job by queue (ms): {stage_busy}")
    paired = statistics.median(tp / ta - 1 for ta, tp in zip(times_alone, times_piped, strict=True))
    stages_ms = sum(v for k, v in stage_busy.items() if k != "luma-tiny")
    work = stages_ms / stage_busy["luma-tiny"]
    print(f"overhead per job, means: {(p - a) * 1000:.1f} ms, {(p / a - 1) * 100:.1f} %")
    print(f"overhead per job, median of each job's own ratio: {paired * 100:.1f} %")
    print(f"stage work per job: {stages_ms:.0f} ms, {work * 100:.1f} % of generate's")
    verdict = "PASS" if paired <= 0.10 else "FAIL: above the 10 % target"
    print(f"{verdict} (target: the median per-job overhead <= 10 %)")


if __name__ == "__main__":
    main()
