"""A throwaway local Ray cluster for one benchmark run (own temp dir, shut down at exit)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def local_ray(num_cpus: int = 4) -> Iterator[Path]:
    import ray

    from luma_ray.runtime.handle import NAMESPACE

    root = Path(tempfile.mkdtemp(prefix="luma-bench-", dir="/tmp"))
    (root / "ray").mkdir()
    os.environ["RAY_TMPDIR"] = str(root / "ray")
    ray.init(
        address="local",
        namespace=NAMESPACE,
        num_cpus=num_cpus,
        include_dashboard=False,
        _temp_dir=str(root / "ray"),
        logging_level="ERROR",
        log_to_driver=False,
    )
    try:
        yield root
    finally:
        try:
            from ray import serve

            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(root, ignore_errors=True)
