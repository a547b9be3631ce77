"""The Ray client over the in-process scheduler (no Ray): it follows the jobs it submitted,
whichever tenant it submitted them for, and tenants stay isolated."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.client.ray_client import Client
from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest, NotFound
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Complete, Pull
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import open_store

LIMITS = {
    "luma-tiny": ModelLimits(
        max_frames=64,
        max_height=128,
        max_width=128,
        max_steps=50,
        default_steps=8,
        default_fps=8,
        size_multiple=8,
    )
}


def service(tmp_path: Path) -> SchedulerService:
    return SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, lambda: 1e9)


def finish(svc: SchedulerService, store_uri: str) -> str:
    """Run the next queued job as a worker would: store a video, complete the job."""
    lease = svc.call(Pull("w1", "local", ("luma-tiny",)))
    assert lease is not None
    uri = open_store(store_uri).put_bytes(f"results/{lease.job_id}/video.mp4", b"mp4 bytes")
    svc.call(Complete(lease.job_id, lease.token, {"video": uri}))
    return lease.job_id


def test_a_client_follows_the_jobs_it_submitted_for_another_tenant(tmp_path: Path) -> None:
    svc = service(tmp_path)
    store = (tmp_path / "results").as_uri()
    client = Client(svc, store, tenant="default")
    job = client.submit("a red circle", tenant="acme")
    assert client.get(job).tenant == "acme"
    assert [view.id for view in client.list(tenant="acme")] == [job]
    assert finish(svc, store) == job
    assert client.wait(job, timeout=5, progress=False).state == "succeeded"
    out = client.download(job, tmp_path / "x.mp4")
    assert out.read_bytes() == b"mp4 bytes"

    other = client.submit("a blue square", tenant="acme")
    assert client.cancel(other).state == "cancelled"


def test_tenant_argument_and_isolation(tmp_path: Path) -> None:
    svc = service(tmp_path)
    store = (tmp_path / "results").as_uri()
    mine = Client(svc, store, tenant="default")
    job = mine.submit("a red circle", tenant="acme")
    with pytest.raises(NotFound):  # asked as its own tenant, explicitly: acme's job is absent
        mine.get(job, tenant="default")
    stranger = Client(svc, store, tenant="default")
    with pytest.raises(NotFound):  # a client that did not submit it sees nothing
        stranger.get(job)
    with pytest.raises(NotFound):
        stranger.cancel(job)
    assert stranger.get(job, tenant="acme").id == job  # naming the tenant is how to follow it
    assert stranger.list() == []


def test_a_callback_url_and_labels_reach_the_job_and_a_bad_url_is_refused(tmp_path: Path) -> None:
    svc = service(tmp_path)
    client = Client(svc, "file:///unused", tenant="acme")
    job = client.submit("p", callback_url="https://hooks.example.com/x", metadata={"k": "v"})
    assert svc.core.get(job).callback_url == "https://hooks.example.com/x"
    assert client.get(job).metadata == {"k": "v"}
    with pytest.raises(InvalidRequest):
        client.submit("p", callback_url="ftp://hooks.example.com/x")
