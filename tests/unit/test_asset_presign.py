"""``asset_urls: s3_presigned``: on an S3 result store, generations show the store's own
presigned GET URLs instead of ``/v1/assets`` ones. A real boto3 client signs them locally (no
request is sent, no S3 server runs here: tests/contract fetches one from SeaweedFS)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import RuntimeConfig, default_tiers, parse_config
from luma_ray.errors import InvalidRequest
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import open_store
from luma_ray.storage.keys import result_key

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
ENDPOINT = "http://127.0.0.1:9"  # never contacted: presigning is local
SECRET_KEY = "a-secret-access-key-0123456789"


def s3_store():
    return open_store(
        "s3://results-bucket/prod",
        endpoint_url=ENDPOINT,
        access_key="AKIDEXAMPLE",
        secret_key=SECRET_KEY,
    )


def test_a_presigned_url_has_the_shape_s3_checks() -> None:
    store = s3_store()
    url = store.presigned_url("results/gen_a/1/video.mp4", 600, "video/mp4", "private, max-age=600")
    parts = urlsplit(url)
    q = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == ENDPOINT
    assert parts.path == "/results-bucket/prod/results/gen_a/1/video.mp4"
    assert q["X-Amz-Expires"] == ["600"] and q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert q["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert q["response-content-type"] == ["video/mp4"]
    assert q["response-cache-control"] == ["private, max-age=600"]
    assert len(q["X-Amz-Signature"][0]) == 64 and SECRET_KEY not in url
    with pytest.raises(InvalidRequest):
        store.presigned_url("results/gen_a/1/video.mp4", 8 * 86_400)  # SigV4: 7 days at most


def test_generations_show_presigned_urls_when_asked(tmp_path: Path) -> None:
    store = s3_store()
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, lambda: 1e9)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    settings = ApiSettings(asset_secret=b"0" * 32, asset_urls="s3_presigned", asset_ttl_s=900)
    client = TestClient(create_app(InProcessScheduler(svc), keys, store, settings))
    key, _ = keys.create("alice", "api", now_s=0)
    auth = {"Authorization": f"Bearer {key}"}
    job_id = client.post("/v1/generations", json={"prompt": "x"}, headers=auth).json()["id"]
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None
    video = store.uri_for(result_key(job_id, lease.token, "video.mp4"))
    thumb = store.uri_for(result_key(job_id, lease.token, "thumb.png"))
    svc.complete(job_id, lease.token, {"video": video, "thumbnail": thumb}, "v1")
    assets = client.get(f"/v1/generations/{job_id}", headers=auth).json()["assets"]
    v = urlsplit(assets["video"])
    assert v.path == f"/results-bucket/prod/results/{job_id}/{lease.token}/video.mp4"
    assert parse_qs(v.query)["X-Amz-Expires"] == ["900"]
    assert parse_qs(v.query)["response-content-type"] == ["video/mp4"]
    assert parse_qs(urlsplit(assets["thumbnail"]).query)["response-content-type"] == ["image/png"]


def test_presigned_asset_urls_need_an_s3_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3:// result store"):
        RuntimeConfig(data_dir=str(tmp_path), asset_urls="s3_presigned")
    s3 = RuntimeConfig(data_dir=str(tmp_path), store_uri="s3://b/p", asset_urls="s3_presigned")
    assert s3.asset_urls == "s3_presigned"
