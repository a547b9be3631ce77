"""Model versions for the rollout tests: the reference weights behind code that differs per
version (the same module name, ``rollmodel``, in each), and a v3 whose code cannot load."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from luma_ray.models.reference.model import LIMITS
from luma_ray.models.reference.publish import write_reference_folder
from luma_ray.models.repository import ModelRepository

MODEL = "tiny-roll"
GANG_MODEL = "tiny-gang"
MIXED_MODEL = "tiny-mixed"
AUTO_MODEL = "tiny-auto"
PIPE_MODEL = "tiny-pipe"
"""The pipeline test's model: generate → qa → caption → thumbnail (conftest.py), with the
shipped trained weights, so the reference check has a real video to judge."""

_CODE = '''"""tiny-roll {version}: the reference model under its own name."""
from luma_ray.models.reference.model import LumaTiny

CODE_VERSION = "{version}"


class Model(LumaTiny):
    name = "tiny-roll"
{extra}'''

_BROKEN = """
    def load(self, checkpoint_dir, device, process_group=None):
        raise RuntimeError("tiny-roll v3 cannot read this checkpoint format")
"""


def publish_version(
    repo: ModelRepository,
    root: Path,
    version: str,
    model: str = MODEL,
    weights: Path | None = None,
) -> None:
    """Publish ``model@version``: the reference network behind ``rollmodel:Model``, with
    random weights (quick to make) or the checkpoint folder ``weights``."""
    folder = write_reference_folder(
        root / model / version,
        weights,
        entrypoint="rollmodel:Model",
        limits=asdict(LIMITS),
        metadata={"purpose": "rollout tests"},
    )
    package = folder / "code" / "rollmodel"
    package.mkdir(parents=True)
    extra = _BROKEN if version == "v3" else ""
    (package / "__init__.py").write_text(_CODE.format(version=version, extra=extra))
    repo.publish(model, version, folder)


PARK_MODEL = "tiny-park"
PARK_STEP_S = 3.0
"""Each step of tiny-park takes this long on top of its compute: a job of 50 steps runs for
minutes, as a real model's would, while the CPU mostly idles."""

_PARK_CODE = '''"""tiny-park: the reference model, each step slowed to the pace of a big model."""
import time

from luma_ray.models.reference.model import LumaTiny


class Model(LumaTiny):
    name = "tiny-park"

    def __init__(self, step_delay_s: float = 0.0) -> None:
        super().__init__()
        self.step_delay_s = step_delay_s

    def generate(self, request, on_step, resume=None):
        def slowed(step, total):
            time.sleep(self.step_delay_s)  # the rest of a big model's step
            return on_step(step, total)

        return super().generate(request, slowed, resume=resume)
'''


def publish_park_model(repo: ModelRepository, root: Path, step_s: float = PARK_STEP_S) -> None:
    """Publish ``tiny-park@v1``: the reference weights behind steps of ``step_s`` each."""
    folder = write_reference_folder(
        root / PARK_MODEL / "v1",
        entrypoint="parkmodel:Model",
        params={"step_delay_s": step_s},
        limits=asdict(LIMITS),
        metadata={"purpose": "preemption tests"},
    )
    package = folder / "code" / "parkmodel"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_PARK_CODE)
    repo.publish(PARK_MODEL, "v1", folder)


DIFFUSERS_MODEL = "tiny-wan"
DIFFUSERS_MODELS = {"tiny-wan": "WanPipeline", "tiny-ltx": "LTXPipeline"}
"""The scaffolded diffusers pipelines the session serves, one pool each."""


def diffusers_installed() -> bool:
    """Whether the ``diffusers`` extra is installed (the tiny-wan pool needs it)."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("diffusers", "transformers", "accelerate"))


def publish_diffusers_model(repository_uri: str, root: Path, model: str, pipeline: str) -> None:
    """Scaffold a tiny ``pipeline``, publish it as ``model@v1`` and promote it, through the
    command line a user would run."""
    from luma_ray.cli import main

    folder = root / model / "v1"
    scaffold = ["models", "scaffold", "--pipeline", pipeline, "--tiny", "--out", str(folder)]
    assert main(scaffold) == 0
    repo = ["--repo", repository_uri]
    assert main(["models", "publish", model, "v1", str(folder), *repo]) == 0
    assert main(["models", "promote", model, "v1", *repo]) == 0
