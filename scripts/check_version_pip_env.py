"""Check by hand that a version's requirements.txt reaches its host process (runtime_env pip).

Publishes a version whose code imports ``tomli_w`` (not a dependency of this project) with
``tomli-w==1.0.0`` in its requirements.txt, starts its host the way a worker does, and prints
where the code came from. Needs the package index reachable; not part of the test suite.

    python scripts/check_version_pip_env.py
"""

import os
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="luma-pipchk-"))
os.environ["RAY_TMPDIR"] = str(WORK / "ray")
(WORK / "ray").mkdir()

import ray  # noqa: E402

from luma_ray.models.cache import ModelCache  # noqa: E402
from luma_ray.models.reference.model import LIMITS  # noqa: E402
from luma_ray.models.reference.publish import write_reference_folder  # noqa: E402
from luma_ray.models.repository import ModelRepository  # noqa: E402
from luma_ray.storage import open_store  # noqa: E402
from luma_ray.workers.gang import GangLauncher  # noqa: E402

root = WORK
folder = write_reference_folder(
    root / "src", entrypoint="pipmodel:Model", limits=dict(vars(LIMITS))
)
(folder / "code" / "pipmodel").mkdir(parents=True)
(folder / "code" / "pipmodel" / "__init__.py").write_text(
    "import tomli_w\nfrom luma_ray.models.reference.model import LumaTiny\n"
    "class Model(LumaTiny):\n    name = 'pip-model'\n    TOMLI_W = tomli_w.__file__\n"
)
(folder / "requirements.txt").write_text("tomli-w==1.0.0\n")
repo = ModelRepository(open_store(str(root / "repo")), time.time)
manifest = repo.publish("pip-model", "v1", folder)
path = ModelCache(root / "cache", repo, 10**9).fetch("pip-model", "v1")
ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(WORK / "ray"))
t = time.time()
launch = GangLauncher(ranks=1, accelerator="cpu", num_cpus=1, torch_threads=1, name_prefix="chk")
loaded = launch(manifest, path)
loaded.warmup()
print("loaded in", round(time.time() - t, 1), "s; source", loaded.model.source)
loaded.close()
ray.shutdown()
