"""Inputs from the clients: ``LumaClient.create(first_frame=path)`` uploads the file first
and sends its id; file ids and URLs go as given; ``luma-ray generate --first-frame`` needs the
HTTP API. The real app in process (no Ray), through the blocking and the asyncio client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from luma_ray.cli import main
from luma_ray.client.http import LumaClient, NotFoundError
from luma_ray.client.http_async import AsyncLumaClient
from tests.unit.media_samples import data_url, image_bytes, webm_bytes
from tests.unit.test_inputs_api import job_inputs, make_api


@pytest.fixture
def api(tmp_path: Path) -> dict[str, Any]:
    return make_api(tmp_path)


def client(api: dict[str, Any]) -> LumaClient:
    key = api["alice"]["Authorization"].removeprefix("Bearer ")
    return LumaClient("http://testserver", key, http_client=api["client"])


def test_create_uploads_a_local_path_and_sends_ids_and_urls_as_given(api, tmp_path) -> None:
    picture = tmp_path / "start.png"
    picture.write_bytes(image_bytes())
    video = tmp_path / "source.webm"
    video.write_bytes(webm_bytes(4))
    c = client(api)
    gen = c.create("a fox", first_frame=picture, last_frame=data_url(image_bytes(seed=2)))
    inputs = job_inputs(api, gen.id)
    assert api["store"].get_bytes(inputs.first_frame) == image_bytes()
    assert api["store"].get_bytes(inputs.last_frame) == image_bytes(seed=2)
    gen2 = c.create("a fox", source_video=str(video), strength=0.3)
    assert job_inputs(api, gen2.id).strength == 0.3


def test_upload_get_and_delete_a_file(api, tmp_path) -> None:
    picture = tmp_path / "p.webp"
    picture.write_bytes(image_bytes(fmt="WEBP"))
    c = client(api)
    info = c.upload_file(picture)
    assert info["kind"] == "image" and info["format"] == "webp"
    assert c.get_file(info["id"]) == info
    gen = c.create("a fox", first_frame=info["id"])  # an id goes as given
    assert job_inputs(api, gen.id).first_frame.startswith("inputs/")
    c.delete_file(info["id"])
    with pytest.raises(NotFoundError):
        c.get_file(info["id"])


def test_the_async_client_uploads_too(api, tmp_path) -> None:
    picture = tmp_path / "start.png"
    picture.write_bytes(image_bytes())
    key = api["alice"]["Authorization"].removeprefix("Bearer ")

    async def go() -> str:
        transport = httpx.ASGITransport(app=api["app"])
        async with AsyncLumaClient("http://t", key, transport=transport) as c:
            return (await c.create("a fox", first_frame=picture)).id

    job = asyncio.run(go())
    assert api["store"].get_bytes(job_inputs(api, job).first_frame) == image_bytes()


def test_cli_inputs_need_the_http_api(tmp_path, capsys) -> None:
    picture = tmp_path / "start.png"
    picture.write_bytes(image_bytes())
    assert main(["generate", "a fox", "--first-frame", str(picture)]) == 2
    assert "--tier-key" in capsys.readouterr().err
