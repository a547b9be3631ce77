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


def publish_version(repo: ModelRepository, root: Path, version: str, model: str = MODEL) -> None:
    """Publish ``model@version``: the reference weights behind ``rollmodel:Model``."""
    folder = write_reference_folder(
        root / model / version,
        entrypoint="rollmodel:Model",
        limits=asdict(LIMITS),
        metadata={"purpose": "rollout tests"},
    )
    package = folder / "code" / "rollmodel"
    package.mkdir(parents=True)
    extra = _BROKEN if version == "v3" else ""
    (package / "__init__.py").write_text(_CODE.format(version=version, extra=extra))
    repo.publish(model, version, folder)
