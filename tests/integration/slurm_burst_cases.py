"""cluster_configs/slurm-burst.sbatch on a real Slurm: a cancelled allocation and one that
reaches its time limit both drain their Ray node, and the job running there is handed back and
resumes on the head's pool with its original enqueue time (issue 17).

A one-node Slurm on loopback (``scripts/slurm.py``: munged, slurmctld, slurmd; KillWait 30 s),
a Ray head of this module's own (``ray.cluster_utils.Cluster`` with a dashboard on a free port,
its own ``RAY_TMPDIR`` and token) running the scheduler and a pool of ``tiny-park`` (3 s steps)
that selects ``luma.io/burst=true``. Each allocation runs the real script with ``sbatch``; its
``ray start`` joins this head as a second node on this machine. Per allocation: submit a long
job while the head's pool is removed, so it runs on the burst node; deploy the head's pool
again; then (a) ``scancel`` (TERM to every process; the script drains within KillWait) or (b)
``--time=3`` with ``--signal=B:USR1@60`` and a 60 s drain margin (the script drains on USR1
and stops its step before the limit). Slurm checks limits every 30 s, so the USR1 comes 60 to
90 s before the end: at least 90 s in, after the node joined (30 s here) and its replica took
the job; ``STOP_GRACE_S=40`` keeps the drain deadline shorter than the job's remaining steps
(50 of 3 s), so the worker hands it back rather than finishing it there. The
journal must show the job handed back by its worker (not a lease that expired), leased again to
the head's worker, with its enqueue time unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.project_scripts import load_script

from .conftest import free_port, journal_record, own_ray_env, wait_for
from .versions import PARK_MODEL, publish_park_model

pytestmark = pytest.mark.timeout(480)

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "cluster_configs" / "slurm-burst.sbatch"
CLUSTER, ACCEL, BURST = "luma.io/cluster", "luma.io/accelerator", "luma.io/burst"
LEASE_TTL_S = 30.0
"""A running job heartbeats once per step (3 s plus its compute). With 6 s, one full run saw
the job's lease on the burst node expire before the drain handed it back (most likely a step
slowed by the head pool's start on the 2-core machine); the hand-back must not race that."""
PULL_WAIT_S = 1.0
"""WorkerLoop's pull_wait_s: how long a worker's pull waits in the scheduler for a job."""
ASK: dict[str, Any] = {"model": PARK_MODEL, "frames": 4, "size": "32x32", "fps": 8}


def _slurm_script() -> ModuleType:
    return load_script("scripts/slurm.py")


@pytest.fixture(scope="module")
def slurm() -> Iterator[Any]:
    script = _slurm_script()
    root = Path(tempfile.mkdtemp(prefix="luma-slurm-", dir="/tmp"))
    try:
        server = script.start_slurm(root / "slurm", kill_wait_s=30)
    except script.SlurmError as exc:  # fail, never skip
        pytest.fail(f"this test needs Slurm: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def head() -> Iterator[dict[str, Any]]:
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster
    from ray.serve.api import RunTarget

    import luma_ray
    from luma_ray.config import PoolConfig, RuntimeConfig, SchedulerConfig
    from luma_ray.launch import pool_application
    from luma_ray.models.repository import ModelRepository
    from luma_ray.runtime.handle import NAMESPACE
    from luma_ray.storage import open_store

    root = Path(tempfile.mkdtemp(prefix="luma-burst-", dir="/tmp"))
    token = own_ray_env(root)
    burst = PoolConfig(model=PARK_MODEL, name="burst", num_cpus=0.5, node_labels={BURST: "true"})
    # The head's pool: removed while a job must land on the burst node, deployed again after.
    on_head = PoolConfig(
        model=PARK_MODEL, name="on-head", num_cpus=0.5, node_labels={CLUSTER: "local"}
    )
    runtime = RuntimeConfig(
        http_host=None,
        data_dir=str(root / "data"),
        scheduler=SchedulerConfig(lease_ttl_s=LEASE_TTL_S),
        pools=[on_head],
    )
    repo = ModelRepository(open_store(runtime.repository), time.time)
    publish_park_model(repo, root / "versions")
    repo.promote(PARK_MODEL, "v1")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": True,  # the script's `ray list` goes through it
            "dashboard_port": free_port(),
            # Not Ray's default agent port: a session cluster on this machine may hold it.
            "dashboard_agent_listen_port": free_port(),
            "labels": {CLUSTER: "local", ACCEL: "cpu"},
        },
    )
    ray.init(address=cluster.address, namespace=NAMESPACE)
    try:
        client = luma_ray.connect(runtime=runtime)  # the scheduler and the head's pool
        # The burst pool waits for a burst node: deployed without waiting for its replica.
        serve.run_many(
            [RunTarget(pool_application(runtime, burst), name=burst.app_name, route_prefix=None)],
            wait_for_ingress_deployment_creation=False,
            wait_for_applications_running=False,
        )
        yield {
            "client": client,
            "runtime": runtime,
            "head_pool": on_head,
            "root": root,
            "token": token,
            "address": cluster.address,
        }
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(root, ignore_errors=True)


def pool_stats(app: str) -> dict[str, Any]:
    from ray import serve

    handle = serve.get_deployment_handle(app, app_name=app)
    stats: dict[str, Any] = handle.stats.remote().result(timeout_s=30)
    return stats


def running_on(app: str, job: str) -> dict[str, Any] | None:
    """The pool's stats if its worker runs ``job``; None otherwise (or not reachable)."""
    try:
        stats = pool_stats(app)
    except Exception:
        return None
    return stats if stats.get("current") == job else None


def head_pool(head: dict[str, Any], up: bool) -> None:
    """Deploy the head's pool and wait until its replica runs, or delete it."""
    from ray import serve

    from luma_ray.launch import pool_application

    pool = head["head_pool"]
    if up:
        serve.run(pool_application(head["runtime"], pool), name=pool.app_name, route_prefix=None)
    elif pool.app_name in serve.status().applications:
        serve.delete(pool.app_name)
        # A stopped worker's last pull waits up to its pull_wait_s (1 s) in the scheduler; a
        # job submitted meanwhile would be leased to the dead worker and expire.
        time.sleep(3 * PULL_WAIT_S)


def sbatch(slurm: Any, head: dict[str, Any], name: str, *options: str) -> tuple[str, Path]:
    """Submit the burst script as an operator would; its job id and output file."""
    out = head["root"] / f"{name}.out"
    env = {
        **slurm.env,
        "LUMA_RAY_HEAD": head["address"],
        "LUMA_RAY_TOKEN_FILE": str(head["token"]),
        "LUMA_SLURM_NAME": "test",
        "PYTHONPATH": str(ROOT),
        # Two Ray nodes on one shared machine: loopback, and free ports for the agent.
        "LUMA_RAY_START_ARGS": (
            f"--node-ip-address 127.0.0.1 --num-cpus 1 --disable-usage-stats "
            f"--dashboard-agent-listen-port {free_port()} --metrics-export-port {free_port()}"
        ),
    }
    submitted = subprocess.run(
        [
            "sbatch", "--parsable", "--nodes=1", "--gpus-per-node=0", f"--output={out}",
            f"--chdir={head['root']}", *options, str(SBATCH),
        ],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return submitted.stdout.strip().split(";")[0], out


def slurm_state(slurm: Any, job: str) -> str:
    shown = slurm.run("scontrol", "show", "job", job)
    return shown.split("JobState=")[1].split()[0]


def land_on_the_burst_node(head: dict[str, Any], slurm: Any, name: str, *options: str) -> Any:
    """Submit a long job, start an allocation, wait until the job runs on the burst node, then
    deploy the head's pool (idle, so the job can resume there); the job id and Slurm's."""
    client = head["client"]
    head_pool(head, up=False)  # so that the job can only run on the burst node
    job = client.submit(f"a long {name} take", tier="free", steps=50, seed=7, **ASK)
    slurm_job, out = sbatch(slurm, head, name, *options)
    try:
        stats = wait_for(
            lambda: (s := running_on("burst", job)) and client.get(job).progress.step >= 1 and s,
            timeout_s=150,
            what="the job to run on the burst node",
        )
    except AssertionError:
        raise AssertionError(_tail(out)) from None
    assert stats["node_labels"][CLUSTER] == "slurm-test", stats["node_labels"]
    assert stats["node_labels"]["luma.io/leave-notice-s"] in ("600", "60")
    head_pool(head, up=True)
    return job, slurm_job, out


def assert_handed_back_and_resumed(head: dict[str, Any], job: str, out: Path) -> None:
    client = head["client"]
    try:
        wait_for(
            lambda: running_on(head["head_pool"].app_name, job) and client.get(job).progress.step,
            timeout_s=120,
            what="the job to resume on the head's pool",
        )
    except AssertionError as exc:
        history = [h[1:] for h in journal_record(head, job)["history"]]
        raise AssertionError(f"{exc}; its history: {history}\n{_tail(out)}") from None
    record = journal_record(head, job)
    reasons = [h[2] for h in record["history"]]
    seen = f"{record['history']}\n{_tail(out)}\n{_worker_lines(head, job)}"
    assert "handed back by its worker" in reasons, seen
    assert "lease expired" not in reasons, seen
    leased = [h[2] for h in record["history"] if h[1] == "leased"]
    assert len(leased) == 2 and leased[0] != leased[1], leased
    assert record["enqueued_at_s"] == record["created_at_s"], record  # its original place
    view = client.get(job)
    assert view.attempts == 1 and view.state in ("leased", "running"), view
    client.cancel(job)  # it would run for minutes more; the head's worker is needed next


def _worker_lines(head: dict[str, Any], job: str, lines: int = 30) -> str:
    """The last lines the workers logged about ``job`` (both nodes log under the head's
    ``RAY_TMPDIR``), with the file each came from."""
    found = [
        f"{log.name}: {line}"
        for log in sorted((head["root"] / "ray").glob("**/logs/**/*"))
        if log.is_file() and log.suffix in (".log", ".out", ".err")
        for line in log.read_text(errors="replace").splitlines()
        if job in line
    ]
    return "\n".join(found[-lines:]) or f"(no worker log line names {job})"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no {path})"


def test_scancel_drains_the_burst_node_and_the_job_resumes_with_its_place(slurm, head) -> None:
    job, slurm_job, out = land_on_the_burst_node(head, slurm, "cancel", "--time=30")
    slurm.run("scancel", slurm_job)
    assert_handed_back_and_resumed(head, job, out)
    log = _tail(out, 200)
    assert f"job={slurm_job}: SIGTERM" in log and "draining 1 node(s), deadline 20s" in log, log
    wait_for(lambda: slurm_state(slurm, slurm_job) == "CANCELLED", 90, "the allocation to end")


def test_the_time_limit_drains_the_burst_node_and_the_job_resumes_with_its_place(
    slurm, head
) -> None:
    job, slurm_job, out = land_on_the_burst_node(
        head, slurm, "time-limit", "--time=3", "--signal=B:USR1@60",
        "--export=ALL,DRAIN_MARGIN_S=60,STOP_GRACE_S=40",
    )  # fmt: skip
    assert_handed_back_and_resumed(head, job, out)
    # The script drained on USR1 and stopped its step itself: the job ends before its limit.
    wait_for(lambda: slurm_state(slurm, slurm_job) != "RUNNING", 120, "the allocation to end")
    log = _tail(out, 200)
    assert f"job={slurm_job}: SIGUSR1" in log and "draining 1 node(s)" in log, log
    assert f"job={slurm_job}: SIGTERM" not in log, log
    assert slurm_state(slurm, slurm_job) == "COMPLETED", log
