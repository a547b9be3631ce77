"""One Ray session for every integration test: a local cluster in its own RAY_TMPDIR.

The session starts the scheduler actor, one ``luma-tiny`` worker replica (a short lease
period), a two-replica pool of ``tiny-roll`` (published here as v1, for the rollout tests)
and one two-rank gang of ``tiny-gang`` (the gang tests), two replicas of the slow-stepping
``tiny-park`` (the preemption tests), one replica each of the scaffolded diffusers pipelines
``tiny-wan`` and ``tiny-ltx`` (when the ``diffusers`` extra is installed), ``tiny-pipe`` with a
pool per pipeline stage (the pipeline test), and shuts everything down after the last test of
this package. Tests poll with deadlines; none sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from luma_ray.workers.tcp_ports import free_port

LEASE_TTL_S = 4.0
API_SLO_S = 15.0
"""The api tier's SLO in the session's cluster (the default is 2 minutes)."""
SESSION_PARK_STEP_S = 1.5
"""How long a step of the session's ``tiny-park`` takes (the preemption test's model; the
Slurm burst cases publish their own with 3 s steps)."""
CLUSTER, ACCEL = "luma.io/cluster", "luma.io/accelerator"
ON_HEAD = {ACCEL: "cpu"}  # pools of the single-node tests stay on the head node


def wait_for(
    predicate: Callable[[], Any], timeout_s: float = 120.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(delay)  # polling interval
        delay = min(0.25, delay * 1.5)


RAY_ENV = ("RAY_TMPDIR", "RAY_AUTH_TOKEN_PATH")
"""The variables :func:`own_ray_env` sets."""


def restore_env(saved: dict[str, str | None]) -> None:
    """Put back the variables ``saved`` as they were (absent where None)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def own_ray_env(root: Path) -> Path:
    """Point Ray at a temp folder and a token of the tests' own under ``root`` (a fresh machine
    has no ~/.ray/auth_token, and a test cluster never touches the user's); the token's path.
    The variables it sets are :data:`RAY_ENV`."""
    os.environ["RAY_TMPDIR"] = str(root / "ray")
    (root / "ray").mkdir()
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    return token


def journal_record(system: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The job as the durable journal of ``system["runtime"]`` has it (the real SQLite file,
    read by a connection of this test's own)."""
    db = sqlite3.connect(system["runtime"].journal)
    try:
        (record,) = db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        db.close()
    return dict(json.loads(record))


# Package scope: the cluster stops after the last test of this package, so the notebooks,
# the unit tests and the child runs after it do not share the 2 cores with its idle replicas.
@pytest.fixture(scope="package")
def system() -> Iterator[dict[str, Any]]:
    ray = pytest.importorskip("ray")
    from ray import serve
    from ray.cluster_utils import Cluster

    import luma_ray
    from luma_ray.config import (
        AutoscalingConfig,
        DreamMachineConfig,
        DreamModel,
        IngressLimits,
        PoolConfig,
        PreemptionConfig,
        RuntimeConfig,
        SchedulerConfig,
        TierConfig,
        default_tiers,
    )
    from luma_ray.models.reference.publish import SHIPPED_WEIGHTS
    from luma_ray.models.repository import ModelRepository
    from luma_ray.runtime.handle import NAMESPACE
    from luma_ray.storage import open_store

    from .versions import (
        AUTO_MODEL,
        DIFFUSERS_MODELS,
        GANG_MODEL,
        MIXED_MODEL,
        PARK_MODEL,
        PIPE_MODEL,
        diffusers_installed,
        publish_diffusers_model,
        publish_park_model,
        publish_version,
    )
    from .versions import MODEL as ROLL_MODEL

    root = Path(tempfile.mkdtemp(prefix="luma-it-", dir="/tmp"))
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    own_ray_env(root)  # Ray's token auth is on: the session's own token
    port, metrics_port = free_port(), free_port()  # the HTTP API; Ray's metrics export
    runtime = RuntimeConfig(
        http_host="127.0.0.1",
        http_port=port,
        allow_private_callbacks=True,
        # Some tests drive the API from one key faster than the default per-key rate (20/s);
        # tests/unit/test_api_limits.py covers that limit.
        ingress=IngressLimits(key_rate_per_s=None),
        # The Dream Machine test's table: small, short videos (the defaults' 5 s at 64 px take
        # longer than the session's short lease allows a step on a loaded 2-core machine).
        dream_machine=DreamMachineConfig(
            models={
                "ray-2": DreamModel(
                    model="luma-tiny",
                    resolutions={"540p": 32},
                    durations={"1s": 1.0},
                    default_resolution="540p",
                    default_duration="1s",
                )
            }
        ),
        data_dir=str(root / "data"),
        # Only the pipeline test's model runs as a pipeline; luma-tiny's default pipeline is
        # off here, so the other tests see the model alone (tests/unit cover the default).
        pipelines={PIPE_MODEL: ["generate", "qa", "caption", "thumbnail"]},
        scheduler=SchedulerConfig(
            lease_ttl_s=LEASE_TTL_S,
            # The preemption test parks running free jobs for api jobs (off by default). Its
            # long jobs have some 25 s of 1.5 s steps left when the api jobs come: a victim
            # needs min_remaining_s of work left (30 s by default).
            preemption=PreemptionConfig(enabled=True, min_remaining_s=10.0),
            clusters={"local": {"dispatch_limit": 2}, "east": {"dispatch_limit": 1}},
            # api's SLO is 15 s here instead of 2 min, so the preemption test's long jobs need
            # only about 20 steps of 1.5 s (SESSION_PARK_STEP_S) for an api job to miss it.
            # A tier only the admission-control test uses: 5 s SLO, shed past 10 SLOs.
            tiers=[
                TierConfig(name="api", max_wait_s=API_SLO_S, weight=5),
                *default_tiers()[1:],
                TierConfig(name="trial", max_wait_s=5, weight=0.5, shed_ratio=10),
            ],
        ),
        pools=[
            PoolConfig(
                model="luma-tiny", replicas=1, num_cpus=1, torch_threads=1, node_labels=ON_HEAD
            ),
            # The rollout tests' pool: two replicas on their own cluster (no dispatch limit),
            # watching active.yaml twice a second.
            PoolConfig(
                model=ROLL_MODEL,
                replicas=2,
                num_cpus=0.5,
                cluster="roll",
                watch_interval_s=0.5,
                node_labels=ON_HEAD,
            ),
            # The gang tests' pool: one replica of two ranks (a gloo group).
            PoolConfig(
                model=GANG_MODEL,
                replicas=1,
                accelerators=2,
                num_cpus=0.5,
                cluster="gang",
                node_labels=ON_HEAD,
            ),
            # The autoscaling test's pool: 1 to 2 replicas, a short idle window.
            PoolConfig(
                model=AUTO_MODEL,
                num_cpus=0.5,
                cluster="auto",
                node_labels=ON_HEAD,
                autoscaling=AutoscalingConfig(
                    min_replicas=1,
                    max_replicas=2,
                    target_drain_s=1.0,
                    idle_window_s=4.0,
                    upscale_delay_s=0.0,
                    metrics_interval_s=0.5,
                ),
            ),
            # One model on two kinds of nodes (the heterogeneous-pool test); each pool's
            # cluster comes from its node's luma.io/cluster label.
            *(
                PoolConfig(
                    model=MIXED_MODEL, name=f"mixed-{kind}", num_cpus=0.5, node_labels=labels
                )
                for kind, labels in (("a", {ACCEL: "cpu-a"}), ("b", {ACCEL: "cpu-b"}))
            ),
            # The pipeline test's pools: its model, and one small pool per stage: QA from
            # pipeline_stages.py (the reference check, with two scripted prompts), the
            # built-in caption and thumbnail.
            # They, and the preemption tests' pool, beat through their node's relay.
            PoolConfig(
                model=PIPE_MODEL,
                num_cpus=0.5,
                cluster="pipe",
                node_labels=ON_HEAD,
                heartbeat_relay=True,
            ),
            *(
                PoolConfig(
                    model=PIPE_MODEL,
                    stage=stage,
                    num_cpus=0.25,
                    cluster="pipe-stages",
                    stage_impl=impl,
                    heartbeat_relay=True,
                )
                for stage, impl in (
                    ("qa", "tests.integration.pipeline_stages:qa"),
                    ("caption", None),
                    ("thumbnail", None),
                )
            ),
            # The preemption tests' pool: two replicas of a model whose steps take seconds.
            PoolConfig(
                model=PARK_MODEL,
                replicas=2,
                num_cpus=0.25,
                cluster="park",
                node_labels=ON_HEAD,
                heartbeat_relay=True,
            ),
            # The diffusers tests' pools: tiny scaffolded Wan and LTX pipelines (the extra).
            *(
                PoolConfig(
                    model=model,
                    num_cpus=0.5,
                    cluster="diffusers",
                    torch_threads=1,
                    node_labels=ON_HEAD,
                )
                for model in (DIFFUSERS_MODELS if diffusers_installed() else ())
            ),
        ],
    )
    repo = ModelRepository(open_store(runtime.repository), time.time)
    for model in (ROLL_MODEL, GANG_MODEL, MIXED_MODEL, AUTO_MODEL, PIPE_MODEL):
        trained = SHIPPED_WEIGHTS if model == PIPE_MODEL else None
        publish_version(repo, root / "versions", "v1", model, trained)
        repo.promote(model, "v1")
    publish_park_model(repo, root / "versions", step_s=SESSION_PARK_STEP_S)
    repo.promote(PARK_MODEL, "v1")
    if diffusers_installed():
        for model, pipeline in DIFFUSERS_MODELS.items():
            publish_diffusers_model(runtime.repository, root / "versions", model, pipeline)
    # Three Ray nodes on this machine: the head (cluster "local") and two labelled nodes of
    # different kinds in clusters "east" and "west".
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            # 4, one for the preemption tests' pool, one for the diffusers pools, two for the
            # pipeline's stages
            "num_cpus": 8,
            "include_dashboard": False,
            "labels": {CLUSTER: "local", ACCEL: "cpu"},
            "metrics_export_port": metrics_port,
        },
    )
    cluster.add_node(num_cpus=1, labels={CLUSTER: "east", ACCEL: "cpu-a"})
    cluster.add_node(num_cpus=1, labels={CLUSTER: "west", ACCEL: "cpu-b"})
    ray.init(address=cluster.address, namespace=NAMESPACE)
    try:
        client = luma_ray.connect(runtime=runtime)  # starts the scheduler and the pool
        yield {
            "client": client,
            "runtime": runtime,
            "scheduler": client.scheduler,
            "root": root,
            "base_url": f"http://127.0.0.1:{port}",
            "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
            "repository": repo,
            "versions_dir": root / "versions",
        }
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(root, ignore_errors=True)
            # The tests after this package (the notebooks' kernels start Ray) must not inherit
            # the removed folder and token.
            restore_env(saved)
