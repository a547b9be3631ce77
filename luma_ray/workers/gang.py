"""Start a model version as a gang of rank processes, and drive it from the pull loop.

Who calls this: ``VersionManager`` calls a :class:`GangLauncher` (its ``Launcher``) to start a
version; the pull loop runs jobs through :class:`GangModel`. A replica reserves one placement
group bundle per rank (``launch.pool_application``: N accelerators, packed on one node); rank
``r`` starts in bundle ``r``, so a new version's ranks take over the old one's accelerators.
These classes are the only worker code that calls Ray for the model.

A gang fails as a whole: if any rank dies, :class:`GangModel` raises, marks itself ``dead``
(the loop stops pulling and the replica's health check fails, so Serve replaces the replica
and with it every rank), and the job is reported as a retryable failure: it goes back to its
queue and runs again on another gang.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from luma_ray.errors import LumaError
from luma_ray.models.interface import (
    PARK,
    Conditioning,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ModelLimits,
    ParkedStateInvalid,
    StepCallback,
)
from luma_ray.models.manifest import Manifest
from luma_ray.workers.host import ModelHost, VersionLoadError

if TYPE_CHECKING:  # pragma: no cover
    pass

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 600.0
"""Longest a version may take to start, form its group, load and warm up."""
STEP_POLL_S = 0.5
BACKENDS = {"cpu": "gloo", "nvidia": "nccl", "amd": "nccl"}  # NCCL is RCCL on ROCm builds
GO, STOP = "go", "stop"
"""The worker's answer to a step, with ``PARK``: what ``ModelHost.wait_step`` takes."""


class GangDied(RuntimeError):
    """A rank of the gang died; the replica must be replaced as a whole."""


class GangModel:
    """The ``VideoModel`` the pull loop runs; forwards each job to rank 0 of the gang."""

    def __init__(
        self,
        ranks: list[Any],
        followers: list[Any],
        name: str,
        version: str,
        limits: ModelLimits,
        source: str | None,
        rank_nodes: list[dict[str, str]] | None = None,
        can_park: bool = False,
    ) -> None:
        self.ranks = ranks
        self.can_park = can_park  # the version's model parks and resumes (rank 0 said so)
        self.rank_nodes = rank_nodes or []  # each rank's node labels, for stats
        self.followers = followers  # refs of ranks 1.. ``follow`` calls; ready = that rank ended
        self.name = name
        self.version = version
        self.limits = limits
        self.source = source
        self.dead = False
        self._generations = itertools.count(1)

    def generate(
        self,
        request: GenerationRequest,
        on_step: StepCallback,
        resume: bytes | None = None,
        conditioning: Conditioning | None = None,
    ) -> Any:
        """Run one job on the gang; ``resume`` (a parked state) and ``conditioning`` (the
        decoded inputs) go to every rank."""
        lead = self.ranks[0]
        generation = next(self._generations)
        ref = lead.generate.remote(request, generation, resume, conditioning)
        seen, answer = 0, GO
        while True:
            self._check_followers()
            try:
                step, total, done = ray.get(
                    lead.wait_step.remote(generation, seen, answer, STEP_POLL_S)
                )
            except ray.exceptions.RayActorError as err:
                self._die("rank 0", err)
            if step > seen:
                if answer == GO:  # a stop or a park is final
                    said = on_step(step, total)
                    answer = PARK if said == PARK else GO if said is None or said else STOP
                seen = step
            elif done:
                break
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as err:
            self._die("rank 0", err)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, (GenerationCancelled, GenerationParked, ParkedStateInvalid)):
                raise cause from None
            if isinstance(cause, LumaError):
                raise cause from None
            self._check_followers()
            raise

    def _check_followers(self) -> None:
        ended, _ = ray.wait(self.followers, num_returns=len(self.followers), timeout=0)
        if ended:
            rank = self.followers.index(ended[0]) + 1
            try:
                ray.get(ended[0])
                reason: BaseException = RuntimeError("it stopped following")
            except Exception as err:
                reason = err
            self._die(f"rank {rank}", reason)

    def _die(self, which: str, err: BaseException) -> None:
        self.dead = True
        log.error("gang of %s@%s lost %s: %s", self.name, self.version, which, err)
        raise GangDied(f"{which} of the gang died ({type(err).__name__})") from None


class GangHandle:
    """A started gang (``versions.Loaded``): its model, warm-up and shutdown."""

    def __init__(self, model: GangModel) -> None:
        self.model = model

    def warmup(self) -> None:
        ray.get(self.model.ranks[0].warmup.remote(), timeout=LOAD_TIMEOUT_S)

    def close(self) -> None:
        for rank in self.model.ranks:
            ray.kill(rank, no_restart=True)


class GangLauncher:
    """Starts a version on ``ranks`` processes (``versions.Launcher``)."""

    def __init__(
        self,
        *,
        ranks: int,
        accelerator: str,
        num_cpus: float,
        torch_threads: int,
        name_prefix: str,
    ) -> None:
        self.ranks = ranks
        self.accelerator = accelerator
        self.num_cpus = num_cpus
        self.torch_threads = torch_threads
        self.name_prefix = name_prefix  # names the rank actors, so operators can find them
        self._launches = itertools.count(1)  # a relaunched version gets fresh names

    def __call__(self, manifest: Manifest, folder: Path) -> GangHandle:
        group = ray.util.get_current_placement_group()
        env = runtime_env(manifest, folder, os.environ.get("PYTHONPATH"))
        ranks: list[Any] = []
        launch = next(self._launches)
        for rank in range(self.ranks):
            options: dict[str, Any] = {
                "num_cpus": self.num_cpus,
                "num_gpus": 0 if self.accelerator == "cpu" else 1,
                "max_concurrency": 4,  # generate, wait_step and follow at once
                "runtime_env": env,
                "name": f"{self.name_prefix}/{manifest.version}/{launch}/rank{rank}",
            }
            if group is not None:
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=rank
                )
            ranks.append(
                ray.remote(ModelHost)
                .options(**options)
                .remote(
                    manifest.model,
                    manifest.version,
                    str(folder),
                    manifest.entrypoint,
                    dict(manifest.params),
                    self.torch_threads,
                    rank,
                    self.ranks,
                    BACKENDS[self.accelerator],
                )
            )
        try:
            master = ray.get(ranks[0].address.remote(), timeout=LOAD_TIMEOUT_S)
            infos = ray.get([r.setup.remote(master) for r in ranks], timeout=LOAD_TIMEOUT_S)
        except Exception:
            _kill(ranks)
            raise
        errors = [f"rank {i['rank']}: {i['error']}" for i in infos if "error" in i]
        if errors:
            _kill(ranks)
            raise VersionLoadError(errors[0].split(": ", 1)[1] if len(infos) == 1 else errors[0])
        followers = [r.follow.remote() for r in ranks[1:]]
        lead = infos[0]
        model = GangModel(
            ranks,
            followers,
            manifest.model,
            manifest.version,
            lead["limits"],
            lead["source"],
            [i["node_labels"] for i in infos],
            bool(lead.get("can_park", False)),
        )
        return GangHandle(model)


def _kill(ranks: list[Any]) -> None:
    for rank in ranks:
        ray.kill(rank, no_restart=True)


def runtime_env(manifest: Manifest, folder: Path, pythonpath: str | None) -> dict[str, Any]:
    """The version's process environment: its code first on the import path, its pip
    requirements installed (Ray builds and caches one virtualenv per requirement set)."""
    env: dict[str, Any] = {
        "env_vars": {"LUMA_MODEL_VERSION": f"{manifest.model}@{manifest.version}"}
    }
    code = folder / "code"
    if code.is_dir():
        paths = [str(code)] + ([pythonpath] if pythonpath else [])
        env["env_vars"]["PYTHONPATH"] = os.pathsep.join(paths)
    if manifest.requirements:
        env["pip"] = list(manifest.requirements)
    return env
