"""Hostile input at the HTTP layer: bodies too large (chunked, multipart, one part), JSON
nested too deep, file parts nobody asked for. Every one is a 4xx problem document, answered
before the app spends memory or a key check on it.

The app is the real one over an in-process scheduler (no Ray). Chunked bodies go through
httpx's ASGI transport, which pulls the body from the test's generator only as the app
receives it, so the generator's count is what the app read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from luma_ray.api.app import MAX_BODY_BYTES, ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import default_tiers, parse_config
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
CHUNK = 64 << 10
BOUNDARY = "luma-test-boundary"


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(tmp_path: Path) -> dict[str, Any]:
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    app = create_app(
        InProcessScheduler(svc), keys, LocalBlobStore(tmp_path / "results"), ApiSettings()
    )
    alice, _ = keys.create("alice", "api", now_s=0)
    return {
        "app": app,
        "client": TestClient(app),
        "alice": {"Authorization": f"Bearer {alice}"},
    }


def assert_problem(r: httpx.Response, status: int, code: str, text: str = "") -> None:
    """A problem body, or OpenAI's error body under /v1/videos, with ``code`` and ``text``."""
    assert r.status_code == status, r.text
    if r.request.url.path.startswith("/v1/videos"):
        assert r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert error["code"] == code and text in error["message"], r.text
        assert error["type"] == "invalid_request_error", r.text
        return
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code and text in r.json()["detail"], r.text


def post_streamed(
    app: FastAPI, path: str, chunks: AsyncIterator[bytes], headers: dict[str, str]
) -> httpx.Response:
    """POST a body with no Content-Length (Transfer-Encoding: chunked) through ASGI."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=chunks, headers=headers)

    return asyncio.run(go())


class Counted:
    """An endless chunked body that counts what was pulled from it."""

    def __init__(self, first: bytes = b"", fill: bytes = b"x", total: int = 96 << 20) -> None:
        self.first, self.fill, self.total, self.sent = first, fill, total, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.first:
            self.sent += len(self.first)
            yield self.first
        while self.sent < self.total:
            self.sent += CHUNK
            yield self.fill * CHUNK


def multipart(*parts: tuple[str, bytes, str | None]) -> bytes:
    """A multipart/form-data body of (name, value, filename or None) parts."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# ---- bodies over the limit -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/generations", "/v1/videos"])
def test_chunked_oversize_body_without_a_key_is_413_and_read_no_further(api, path) -> None:
    body = Counted(first=b'{"prompt": "', fill=b"a")
    r = post_streamed(api["app"], path, body, {"Content-Type": "application/json"})
    assert_problem(r, 413, "too_large", str(MAX_BODY_BYTES))  # not 401: no key was looked at
    assert r.headers["connection"] == "close"
    assert MAX_BODY_BYTES < body.sent <= MAX_BODY_BYTES + CHUNK + len(body.first)


def test_chunked_multipart_oversize_is_413_with_or_without_a_key(api) -> None:
    head = multipart(("prompt", b"a fox", None))[: -len(f"--{BOUNDARY}--\r\n")]
    head += f"--{BOUNDARY}\r\n".encode()
    head += b'Content-Disposition: form-data; name="junk"; filename="j.bin"\r\n\r\n'
    for headers in ({**FORM, **api["alice"]}, FORM):
        body = Counted(first=head)
        r = post_streamed(api["app"], "/v1/videos", body, headers)
        assert_problem(r, 413, "too_large")
        assert body.sent <= MAX_BODY_BYTES + CHUNK + len(head)


def test_declared_oversize_body_is_413_before_reading_it(api) -> None:
    r = api["client"].post(
        "/v1/videos",
        files={"input_reference": ("big.png", b"x" * (2 << 20), "image/png")},
        data={"prompt": "a fox"},
        headers=api["alice"],
    )
    assert_problem(r, 413, "too_large")


def test_a_body_under_the_limit_still_works_chunked(api) -> None:
    async def small() -> AsyncIterator[bytes]:
        yield b'{"prompt": '
        yield b'"a fox"}'

    headers = {**api["alice"], "Content-Type": "application/json"}
    r = post_streamed(api["app"], "/v1/generations", small(), headers)
    assert r.status_code == 201, r.text
    r = post_streamed(api["app"], "/v1/videos", small(), headers)
    assert r.status_code == 200 and r.json()["prompt"] == "a fox"


# ---- JSON nested too deep ------------------------------------------------------------------


def deep(levels: int, inner: bytes = b"1") -> bytes:
    return b"[" * levels + inner + b"]" * levels


@pytest.mark.parametrize("path", ["/v1/generations", "/v1/videos"])
@pytest.mark.parametrize(
    "body",
    [
        deep(100_000),  # past the decoder's own recursion limit
        deep(33),  # just past ours
        b'{"prompt": "a fox", "metadata": {"a": ' + deep(40, b'"x"') + b"}}",
        b'{"prompt": ' + deep(5000, b'"x"') + b"}",
    ],
    ids=["100000", "33", "in-metadata", "in-prompt"],
)
def test_json_nested_too_deep_is_400_saying_so(api, path, body) -> None:
    headers = {**api["alice"], "Content-Type": "application/json"}
    r = api["client"].post(path, content=body, headers=headers)
    assert_problem(r, 400, "invalid_request", "JSON nested deeper than 32 levels")


def test_json_within_the_depth_limit_is_judged_on_its_fields(api) -> None:
    headers = {**api["alice"], "Content-Type": "application/json"}
    body = b'{"prompt": "a fox", "metadata": {"a": ' + deep(10, b'"x"') + b"}}"
    r = api["client"].post("/v1/generations", content=body, headers=headers)
    assert_problem(r, 422, "validation_error", "metadata")
    r = api["client"].post("/v1/videos", content=b'{"prompt": [[["a fox"]]]}', headers=headers)
    assert r.status_code in (200, 400), r.text  # a list as the prompt: never a 500
    r = api["client"].post("/v1/generations", content=b'{"prompt": ', headers=headers)
    assert_problem(r, 422, "validation_error")  # malformed JSON stays what it was


# ---- multipart: file parts and part sizes ---------------------------------------------------


@pytest.mark.parametrize(
    "parts,status,code,text",
    [
        ([("junk", b"x" * 10, "j.bin")], 400, "invalid_request", "junk"),
        ([("input_reference", b"\x89PNG", "a.png")], 400, "invalid_request", "input_reference"),
        ([("junk", b"x" * (200 << 10), "j.bin")], 413, "too_large", "junk"),
        ([("metadata", b"x" * (100 << 10), None)], 413, "too_large", "metadata"),
        ([("prompt", b"again", None)], 400, "invalid_request", "prompt"),
        ([("seed", b"1", None)], 400, "invalid_request", "seed"),
        ([("size", b"\xff\xfe", None)], 400, "invalid_request", "UTF-8"),
    ],
    ids=["file", "input-reference", "big-file", "big-field", "twice", "unknown", "not-utf8"],
)
def test_multipart_file_parts_and_oversize_parts_are_refused(api, parts, status, code, text):
    body = multipart(("prompt", b"a fox", None), *parts)
    r = api["client"].post("/v1/videos", content=body, headers={**FORM, **api["alice"]})
    assert_problem(r, status, code, text)
    assert api["client"].get("/v1/videos", headers=api["alice"]).json()["data"] == []


@pytest.mark.parametrize(
    "body,ctype",
    [
        (b"no boundary here", "multipart/form-data"),
        (b"--other\r\n\r\nx\r\n--other--\r\n", f"multipart/form-data; boundary={BOUNDARY}"),
        (b"prompt=a+fox&prompt=again", "application/x-www-form-urlencoded"),
        (
            b"prompt=a+fox&" + b"&".join(b"f%d=1" % i for i in range(100)),
            "application/x-www-form-urlencoded",
        ),
    ],
    ids=["no-boundary", "wrong-boundary", "urlencoded-twice", "urlencoded-many"],
)
def test_malformed_forms_are_400(api, body, ctype) -> None:
    r = api["client"].post(
        "/v1/videos", content=body, headers={"Content-Type": ctype, **api["alice"]}
    )
    assert_problem(r, 400, "invalid_request")


def test_multipart_text_fields_as_the_sdk_sends_them_work(api) -> None:
    body = multipart(("prompt", "a f\u00f6x".encode(), None), ("seconds", b"4", None))
    r = api["client"].post("/v1/videos", content=body, headers={**FORM, **api["alice"]})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "a f\u00f6x" and r.json()["seconds"] == "4"


def test_the_openai_package_still_creates_videos_through_the_form_parser(api) -> None:
    openai = pytest.importorskip("openai")
    key = api["alice"]["Authorization"].removeprefix("Bearer ")

    async def go() -> Any:
        transport = httpx.ASGITransport(app=api["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            client = openai.AsyncOpenAI(base_url="http://test/v1", api_key=key, http_client=http)
            return await client.videos.create(prompt="a paper boat", seconds="4", size="720x1280")

    video = asyncio.run(go())
    assert video.status == "queued" and video.prompt == "a paper boat" and video.seconds == "4"


def test_openai_sdk_errors_carry_our_message_and_content_not_ready_says_so(api) -> None:
    openai = pytest.importorskip("openai")
    key = api["alice"]["Authorization"].removeprefix("Bearer ")

    async def go() -> tuple[Any, Any, Any]:
        transport = httpx.ASGITransport(app=api["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            client = openai.AsyncOpenAI(
                base_url="http://test/v1", api_key=key, http_client=http, max_retries=0
            )
            with pytest.raises(openai.BadRequestError) as bad:
                await client.videos.create(prompt="a boat", size="1280xfoo")  # type: ignore[arg-type]
            video = await client.videos.create(prompt="a paper boat", seconds="4")
            with pytest.raises(openai.ConflictError) as early:
                await client.videos.download_content(video.id)
            with pytest.raises(openai.NotFoundError) as missing:
                await client.videos.retrieve("gen_nope")
            return bad.value, early.value, missing.value

    bad, early, missing = asyncio.run(go())
    assert "size" in bad.message and "1280xfoo" in bad.message, bad.message
    assert bad.code == "invalid_request" and bad.type == "invalid_request_error"
    assert "is queued" in early.message and "ready once it has succeeded" in early.message
    assert early.code == "not_ready"
    assert missing.code == "not_found"


def test_native_content_of_a_queued_generation_is_409_not_ready(api) -> None:
    gen = api["client"].post("/v1/generations", json={"prompt": "x"}, headers=api["alice"])
    r = api["client"].get(f"/v1/generations/{gen.json()['id']}/content", headers=api["alice"])
    assert_problem(r, 409, "not_ready", "is queued")


def test_a_route_that_does_not_exist_says_so_and_where_the_routes_are(api) -> None:
    c = api["client"]
    r = c.get("/v1/generation/gen_1", headers=api["alice"])  # a typo of /v1/generations
    assert_problem(r, 404, "not_found", "no route GET /v1/generation/gen_1 here")
    assert "/openapi.json" in r.json()["detail"] and c.get("/openapi.json").status_code == 200
    r = c.put("/v1/generations", headers=api["alice"], json={"prompt": "x"})
    assert_problem(r, 405, "method_not_allowed", "PUT /v1/generations is not allowed")
    # A job that does not exist keeps its own message.
    r = c.get("/v1/generations/gen_nope", headers=api["alice"])
    assert_problem(r, 404, "not_found", "no generation 'gen_nope'")


@pytest.mark.parametrize(
    ("path", "status"),
    [("/healthz", 200), ("/v1/generations/gen_nope", 404), ("/v1/videos/gen_nope", 404)],
)
def test_every_answer_carries_a_request_id(api, path: str, status: int) -> None:
    c = api["client"]
    r = c.get(path, headers=api["alice"])
    assert r.status_code == status
    assert r.headers["x-request-id"].startswith("req_") and len(r.headers["x-request-id"]) > 20
    assert c.get(path, headers=api["alice"]).headers["x-request-id"] != r.headers["x-request-id"]
    mine = c.get(path, headers={**api["alice"], "X-Request-Id": "client-7.a:b"})
    assert mine.headers["x-request-id"] == "client-7.a:b"  # a sane id of the caller's is kept
    odd = c.get(path, headers={**api["alice"], "X-Request-Id": "a b\tc" + "x" * 200})
    assert odd.headers["x-request-id"].startswith("req_")  # anything else is replaced


def test_a_refused_oversize_body_also_carries_a_request_id(api) -> None:
    headers = {**api["alice"], "Content-Type": "application/json"}
    r = post_streamed(api["app"], "/v1/generations", Counted(total=2 << 20).__aiter__(), headers)
    assert r.status_code == 413 and r.headers["x-request-id"].startswith("req_")
