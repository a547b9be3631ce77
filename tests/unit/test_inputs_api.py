"""Image and video inputs through the HTTP API: ``/v1/files`` uploads, and ``first_frame``,
``last_frame``, ``source_video``, ``extend`` on ``POST /v1/generations``, checked before
anything is queued.

The app is the real one over an in-process scheduler (no Ray), real key store, real local
blob store; inputs are real PNG/JPEG/WebP images and MP4/WebM videos. URLs are fetched from
real servers on 127.0.0.1; names that resolve to private addresses use a fake resolver.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import IngressLimits, default_tiers, parse_config
from luma_ray.jobs.request import INPUT_KINDS
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Assignment,
    Complete,
    GetJob,
    InProcessScheduler,
    Pull,
)
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore
from tests.unit.media_samples import (
    BROKEN_PNG,
    data_url,
    image_bytes,
    mp4_bytes,
    webm_bytes,
)

LIMITS = {
    "luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8, inputs=INPUT_KINDS),
    "text-only": ModelLimits(48, 128, 128, 50, 8, 8, 8),
}
UPLOAD_LIMIT = 1 << 20  # 1 MiB in these tests; the default is 50 MiB


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_api(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "blobs")
    limits = IngressLimits(max_upload_bytes=UPLOAD_LIMIT, key_rate_per_s=None)
    app = create_app(InProcessScheduler(svc), keys, store, ApiSettings(limits=limits, **settings))
    alice, _ = keys.create("alice", "api", now_s=0)
    bob, _ = keys.create("bob", "api", now_s=0)
    return {
        "app": app,
        "client": TestClient(app),
        "svc": svc,
        "store": store,
        "alice": {"Authorization": f"Bearer {alice}"},
        "bob": {"Authorization": f"Bearer {bob}"},
    }


@pytest.fixture
def api(tmp_path: Path) -> dict[str, Any]:
    return make_api(tmp_path)


def upload(api: dict[str, Any], data: bytes, who: str = "alice", name: str = "x.bin") -> Any:
    files = {"file": (name, data, "application/octet-stream")}  # the type is not trusted
    return api["client"].post("/v1/files", files=files, headers=api[who])


def create(api: dict[str, Any], who: str = "alice", **body: Any) -> httpx.Response:
    return api["client"].post("/v1/generations", json={"prompt": "a fox", **body}, headers=api[who])


def job_inputs(api: dict[str, Any], job_id: str) -> Any:
    return api["svc"].call(GetJob(job_id, "alice")).params.inputs


def queued(api: dict[str, Any]) -> int:
    return sum(api["svc"].stats()["states"].values())


def inputs_stored(api: dict[str, Any]) -> list[str]:
    return api["store"].list("inputs/")


def assert_refused(r: httpx.Response, status: int, text: str) -> None:
    """A problem naming ``text``, or OpenAI's error body under /v1/videos."""
    assert r.status_code == status, r.text
    if r.request.url.path.startswith("/v1/videos"):
        assert text in r.json()["error"]["message"], r.text
        return
    assert r.headers["content-type"] == "application/problem+json"
    assert text in r.json()["detail"], r.text


# ---- /v1/files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind", "fmt", "size", "frames"),
    [
        (image_bytes(40, 60, "PNG"), "image", "png", (60, 40), None),
        (image_bytes(40, 60, "JPEG"), "image", "jpeg", (60, 40), None),
        (image_bytes(40, 60, "WEBP"), "image", "webp", (60, 40), None),
        (mp4_bytes(6), "video", "mp4", (48, 32), 6),
        (webm_bytes(5), "video", "webm", (48, 32), 5),
    ],
    ids=["png", "jpeg", "webp", "mp4", "webm"],
)
def test_upload_is_recognised_by_content_and_measured(api, data, kind, fmt, size, frames):
    r = upload(api, data, name="misleading.txt")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["kind"], out["format"], out["bytes"]) == (kind, fmt, len(data))
    assert (out["width"], out["height"], out["frames"]) == (*size, frames)
    assert out["id"].startswith("file_") and out["url"] == f"/v1/files/{out['id']}/content"
    c = api["client"]
    assert c.get(f"/v1/files/{out['id']}", headers=api["alice"]).json() == out
    content = c.get(out["url"], headers=api["alice"])
    assert content.content == data and content.headers["content-type"] == out["media_type"]


def test_upload_that_is_not_media_or_does_not_decode_is_400(api) -> None:
    assert_refused(upload(api, b"hello, not an image"), 400, "not a supported image or video")
    assert_refused(upload(api, BROKEN_PNG), 400, "file: the image does not decode")
    assert api["store"].list("files/") == []


def test_another_tenant_cannot_see_use_or_delete_my_file(api) -> None:
    file_id = upload(api, image_bytes()).json()["id"]
    c = api["client"]
    for path in (f"/v1/files/{file_id}", f"/v1/files/{file_id}/content"):
        assert c.get(path, headers=api["bob"]).status_code == 404
    assert c.delete(f"/v1/files/{file_id}", headers=api["bob"]).status_code == 404
    assert_refused(create(api, "bob", first_frame=file_id), 400, f"first_frame: no file {file_id}")
    assert queued(api) == 0
    assert c.get(f"/v1/files/{file_id}", headers=api["alice"]).status_code == 200


def test_delete_file_keeps_the_jobs_own_copy(api) -> None:
    file_id = upload(api, image_bytes()).json()["id"]
    job = create(api, first_frame=file_id)
    assert job.status_code == 201, job.text
    c = api["client"]
    assert c.delete(f"/v1/files/{file_id}", headers=api["alice"]).json()["deleted"]
    assert c.get(f"/v1/files/{file_id}", headers=api["alice"]).status_code == 404
    key = job_inputs(api, job.json()["id"]).first_frame
    assert api["store"].get_bytes(key) == image_bytes()  # the job still has its input


class Streamed:
    """A multipart upload of ``total`` bytes made as it is sent, counting what was pulled."""

    def __init__(self, total: int) -> None:
        self.total, self.sent = total, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        self.sent += len(head)
        yield head
        chunk = b"\x00" * (64 << 10)
        while self.sent < self.total:
            self.sent += len(chunk)
            yield chunk
        yield b"\r\n--b--\r\n"


def test_a_200_mb_upload_is_413_naming_the_limit_and_read_no_further(api) -> None:
    body = Streamed(200 << 20)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=api["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {**api["alice"], "Content-Type": "multipart/form-data; boundary=b"}
            return await client.post("/v1/files", content=body, headers=headers)

    r = asyncio.run(go())
    assert_refused(r, 413, str(UPLOAD_LIMIT))
    assert body.sent < 2 * UPLOAD_LIMIT  # stopped at the limit, not after 200 MB
    assert api["store"].list("files/") == []


def test_a_declared_200_mb_upload_is_413_before_the_body_is_read(api) -> None:
    headers = {
        **api["alice"],
        "Content-Type": "multipart/form-data; boundary=b",
        "Content-Length": str(200 << 20),
    }
    r = api["client"].post("/v1/files", content=b"--b--\r\n", headers=headers)
    assert r.status_code == 413


# ---- inputs on /v1/generations -------------------------------------------------------------


def test_each_kind_of_input_reaches_the_job_as_a_stored_key(api, tmp_path) -> None:
    image = upload(api, image_bytes()).json()["id"]
    video = upload(api, mp4_bytes(6, tmp=tmp_path)).json()["id"]
    r = create(
        api,
        first_frame=image,
        last_frame=data_url(image_bytes(seed=3, fmt="JPEG"), "image/jpeg"),
    )
    assert r.status_code == 201, r.text
    r2 = create(api, source_video=video, strength=0.6)
    assert r2.status_code == 201, r2.text
    first = job_inputs(api, r.json()["id"])
    assert first.first_frame.startswith("inputs/") and first.last_frame.startswith("inputs/")
    assert api["store"].get_bytes(first.last_frame) == image_bytes(seed=3, fmt="JPEG")
    second = job_inputs(api, r2.json()["id"])
    assert second.source_video.startswith("inputs/") and second.strength == 0.6


def test_extend_takes_the_key_of_a_succeeded_generation_of_the_same_tenant(api, tmp_path):
    first = create(api).json()["id"]
    svc = api["svc"]
    assert_refused(create(api, extend=first), 400, "extend: generation")  # still queued
    lease: Assignment = svc.call(Pull("w1", "c1", ("luma-tiny",), 0))
    uri = api["store"].put_bytes(f"results/{first}/1/video.mp4", mp4_bytes(4, tmp=tmp_path))
    svc.call(Complete(lease.job_id, lease.token, {"video": uri}))
    r = create(api, extend=first)
    assert r.status_code == 201, r.text
    inputs = job_inputs(api, r.json()["id"])
    assert inputs.extend_video == f"results/{first}/1/video.mp4"
    assert_refused(create(api, "bob", extend=first), 400, "extend: no generation")


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"first_frame": data_url(BROKEN_PNG)}, 400, "first_frame: the image does not decode"),
        ({"last_frame": data_url(b"plain text")}, 400, "last_frame: the file is not a supported"),
        ({"first_frame": "data:image/png,notbase64"}, 400, "first_frame: a data: URL must be"),
        ({"first_frame": "file_000000000000000000000000"}, 400, "first_frame: no file"),
        ({"first_frame": "just words"}, 400, "first_frame: give a file id"),
        ({"first_frame": data_url(image_bytes(8, 5000))}, 400, "first_frame: the image is 5000x8"),
        ({"source_video": "IMG", "strength": 0.5}, 400, "source_video: this is a image"),
        ({"first_frame": "VID"}, 400, "first_frame: this is a video"),
        ({"source_video": "LONG", "strength": 0.5}, 400, "source_video: the video has 60 frames"),
        ({"first_frame": "IMG", "model": "text-only"}, 400, "first_frame: this model does not"),
        ({"first_frame": "http://127.0.0.1:9/x.png"}, 400, "first_frame points at a private"),
        ({"first_frame": "http://10.1.2.3/x.png"}, 400, "first_frame points at a private"),
        ({"first_frame": "http://media.internal/x.png"}, 400, "resolves to a private"),
        ({"last_frame": "ftp://example.com/x.png"}, 400, "last_frame: give a file id"),
    ],
)
def test_a_bad_input_is_refused_naming_its_field_and_nothing_is_queued(
    tmp_path, body, status, text
) -> None:
    fake_dns = {"media.internal": ["10.0.0.7"]}
    api = make_api(tmp_path, resolver=lambda host, port: fake_dns[host])
    files = {
        "IMG": upload(api, image_bytes()).json()["id"],
        "VID": upload(api, mp4_bytes(6, tmp=tmp_path)).json()["id"],
        "LONG": upload(api, mp4_bytes(60, tmp=tmp_path)).json()["id"],
    }
    body = {k: files.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    assert_refused(create(api, **body), status, text)
    assert queued(api) == 0
    assert inputs_stored(api) == []


def test_intake_refusing_an_input_leaves_no_copy_behind(api) -> None:
    """The ingress checks and stores; intake still has the last word (strength missing)."""
    r = create(api, source_video=upload(api, webm_bytes(4)).json()["id"])
    assert_refused(r, 400, "strength")
    assert queued(api) == 0 and inputs_stored(api) == []


def test_idempotent_retry_with_inputs_is_the_same_job(api) -> None:
    headers = {**api["alice"], "Idempotency-Key": "k1"}
    body = {"prompt": "a fox", "first_frame": data_url(image_bytes())}
    c = api["client"]
    one = c.post("/v1/generations", json=body, headers=headers)
    two = c.post("/v1/generations", json=body, headers=headers)
    assert one.status_code == 201 and two.json()["id"] == one.json()["id"]
    assert queued(api) == 1 and len(inputs_stored(api)) == 1


def test_deleting_the_generation_deletes_its_input_copies(api) -> None:
    job = create(api, first_frame=data_url(image_bytes())).json()["id"]
    assert len(inputs_stored(api)) == 1
    assert api["client"].delete(f"/v1/generations/{job}", headers=api["alice"]).status_code == 200
    assert inputs_stored(api) == []


# ---- http(s) URLs ------------------------------------------------------------------------------


@pytest.fixture
def media_server() -> Iterator[tuple[str, dict[str, tuple[int, bytes, dict[str, str]]]]]:
    """A GET server on 127.0.0.1: path → (status, body, headers)."""
    routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, headers = routes.get(self.path, (404, b"", {}))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


def test_url_inputs_are_fetched_when_private_addresses_are_allowed(tmp_path, media_server):
    base, routes = media_server
    routes["/a.png"] = (200, image_bytes(), {})
    routes["/moved.png"] = (302, b"", {"Location": "/a.png"})
    routes["/huge.png"] = (200, b"\x89PNG\r\n\x1a\n" + b"\x00" * (UPLOAD_LIMIT + 1), {})
    api = make_api(tmp_path, allow_private_inputs=True)
    r = create(api, first_frame=f"{base}/a.png")
    assert r.status_code == 201, r.text
    key = job_inputs(api, r.json()["id"]).first_frame
    assert api["store"].get_bytes(key) == image_bytes()
    assert_refused(create(api, first_frame=f"{base}/moved.png"), 400, "redirects")
    assert_refused(create(api, first_frame=f"{base}/missing.png"), 400, "HTTP 404")
    assert_refused(create(api, first_frame=f"{base}/huge.png"), 413, "first_frame: ")
    assert queued(api) == 1


def test_url_to_loopback_is_refused_by_default_even_when_it_serves(api, media_server):
    base, routes = media_server
    routes["/a.png"] = (200, image_bytes(), {})
    assert_refused(create(api, first_frame=f"{base}/a.png"), 400, "first_frame points at a private")
    assert queued(api) == 0


# ---- OpenAI-compatible /v1/videos -----------------------------------------------------------


def test_openai_input_reference_becomes_the_first_frame(api) -> None:
    c = api["client"]
    files = {"input_reference": ("start.png", image_bytes(), "image/png")}
    r = c.post("/v1/videos", data={"prompt": "a fox"}, files=files, headers=api["alice"])
    assert r.status_code == 200, r.text
    key = job_inputs(api, r.json()["id"]).first_frame
    assert api["store"].get_bytes(key) == image_bytes()
    as_id = upload(api, image_bytes(seed=5)).json()["id"]
    r2 = c.post(
        "/v1/videos", json={"prompt": "a fox", "input_reference": as_id}, headers=api["alice"]
    )
    assert r2.status_code == 200, r2.text


def test_openai_bad_input_reference_is_400_naming_it(api) -> None:
    files = {"input_reference": ("start.png", BROKEN_PNG, "image/png")}
    r = api["client"].post("/v1/videos", data={"prompt": "a"}, files=files, headers=api["alice"])
    assert_refused(r, 400, "input_reference: the image does not decode")
    assert queued(api) == 0 and inputs_stored(api) == []
