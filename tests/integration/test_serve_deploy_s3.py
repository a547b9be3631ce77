"""`serve deploy` of the config `luma-ray serve-config` writes, on a running cluster with an S3
result store, keeps the workers writing results to S3 (issue 17: the old builders redeployed
workers that wrote to a local folder).

Its own cluster, not the session's (``serve deploy`` replaces every app of a cluster): a real
SeaweedFS on loopback (``scripts/seaweedfs.py``, as the contract suite starts it), then, as an
operator would, in subprocesses with their own ``RAY_TMPDIR``, data dir and Ray token:
``luma-ray up --detach --store s3://... --s3-endpoint-url ...``, ``luma-ray serve-config`` with
the same options and two worker replicas, ``serve deploy`` of that file through the head's
dashboard, then ``luma-ray generate`` of one video. The job's files must be in the bucket and
none under the data dir's local results folder. The test reads Serve's state from the
dashboard's REST API (what ``serve status`` prints). The head is a cluster of the test's own on
ports chosen free (own_cluster.py), so it runs beside the session's cluster; it is killed at
the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.project_scripts import load_script

from .conftest import free_port, wait_for
from .own_cluster import kill_hard, own_head, strays

REPO = Path(__file__).resolve().parents[2]
BUCKET = "luma-deploy"
pytestmark = pytest.mark.timeout(900)  # two cluster starts and a deploy on a loaded machine
PREFIX = "videos"


def _seaweedfs_script() -> ModuleType:
    return load_script("scripts/seaweedfs.py")


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A SeaweedFS with the test's bucket; its endpoint and credentials."""
    script = _seaweedfs_script()
    try:
        script.find_weed()
    except script.SeaweedFSError as exc:  # fail, never skip
        pytest.fail(f"this test needs SeaweedFS: {exc}", pytrace=False)
    server = script.start_seaweedfs(tmp_path / "seaweedfs", timeout_s=60.0)
    try:
        from luma_ray.storage import open_store

        options = server.connection()
        open_store(f"s3://{BUCKET}", create_bucket=True, **options)
        yield options
    finally:
        server.stop(grace_s=0.5)


def _run(args: list[str], env: dict[str, str], timeout_s: float) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _serve_status(dashboard: str, token: Path) -> dict[str, Any]:
    """Serve's applications as the head's dashboard reports them (the REST call behind
    ``serve status``; one HTTP request instead of a fresh interpreter importing Ray per poll,
    which took CPU from the deploy on the 2-core machine); empty while it cannot answer."""
    request = urllib.request.Request(
        f"{dashboard}/api/serve/applications/",
        headers={"Authorization": f"Bearer {token.read_text().strip()}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            loaded = json.load(answer)
    except (OSError, ValueError):  # not up yet, or a half-written answer: "not yet"
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _running_with(dashboard: str, token: Path, app: str, replicas: int) -> bool:
    apps = _serve_status(dashboard, token).get("applications") or {}
    if not apps or any(a.get("status") != "RUNNING" for a in apps.values()):
        return False
    deployment = ((apps.get(app) or {}).get("deployments") or {}).get(app) or {}
    running = [r for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING"]
    return len(running) == replicas


def test_serve_deploy_on_an_s3_cluster_keeps_writing_results_to_s3(
    s3: dict[str, str], tmp_path: Path
) -> None:
    root = Path(tempfile.mkdtemp(prefix="luma-deploy-", dir="/tmp"))
    data_dir = root / "data"
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    (root / "ray").mkdir()
    env = {
        **os.environ,
        "RAY_TMPDIR": str(root / "ray"),
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_AUTH_MODE": "token",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    luma = [sys.executable, "-m", "luma_ray.cli"]
    options = [
        "--data-dir",
        str(data_dir),
        "--store",
        f"s3://{BUCKET}/{PREFIX}",
        "--s3-endpoint-url",
        s3["endpoint_url"],
        "--port",
        str(port),
    ]
    head = None
    try:
        head, dashboard = own_head(env, root / "head.log")
        env["RAY_ADDRESS"] = head.address
        _run([*luma, "up", "--detach", *options], env, timeout_s=600)
        config = root / "luma.yaml"
        _run(
            [*luma, "serve-config", *options, "--replicas", "2", "-o", str(config)],
            env,
            timeout_s=120,
        )
        _run(
            [sys.executable, "-m", "ray.serve.scripts", "deploy", str(config), "-a", dashboard],
            env,
            timeout_s=300,
        )
        try:
            wait_for(
                lambda: _running_with(dashboard, token, "luma-tiny-workers", 2),
                timeout_s=600,
                what="the deployed config's two luma-tiny replicas",
            )
        except AssertionError as err:
            raise AssertionError(
                f"{err}; serve status: {_serve_status(dashboard, token)}"
            ) from None
        # The client downloads from the store too: boto3 reads the endpoint from its variable.
        client_env = {**env, "AWS_ENDPOINT_URL_S3": s3["endpoint_url"]}
        out = _run(
            [*luma, "generate", "a red fox", *options[:4], "-o", str(tmp_path / "fox.mp4")],
            client_env,
            timeout_s=600,
        )
        job_id = re.search(r"submitted (\S+)", out)
        assert job_id, out
        from luma_ray.storage import open_store

        store = open_store(f"s3://{BUCKET}/{PREFIX}", **s3)
        keys = store.list(f"results/{job_id.group(1)}/")
        assert any(key.endswith(".mp4") for key in keys), keys
        local = data_dir / "results"
        assert not local.exists() or not any(local.rglob("*.mp4")), list(local.rglob("*"))
        assert (tmp_path / "fox.mp4").stat().st_size > 0
        status = json.dumps(_serve_status(dashboard, token))
        assert "luma-api" in status and "luma-tiny-caption-workers" in status
    finally:
        if head is not None:
            kill_hard(head.pid)
        for pid in strays(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
