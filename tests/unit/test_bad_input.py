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
    assert r.status_code == status, r.text
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
