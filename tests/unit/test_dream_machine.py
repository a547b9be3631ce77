"""The Dream Machine-compatible API driven by the official ``lumaai`` SDK, in process.

The real app over an in-process scheduler (no Ray); a test worker leases the job and stores a
real MP4, as a model worker would. The SDK (its async client) talks to the app through httpx's
ASGI transport, so every request goes through the same routing, auth and error handling as over
the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from luma_ray.config import DreamMachineConfig
from luma_ray.models.encode import probe_mp4
from luma_ray.notify.events import WebhookEvent, event_body
from luma_ray.scheduler.protocol import GetJob, Pull
from luma_ray.wire.dream_machine import asset_path, dream_generation
from tests.unit.media_samples import data_url, image_bytes
from tests.unit.served_app import run, run_next, served_app

lumaai = pytest.importorskip("lumaai")

BASE = "http://test/dream-machine/v1"


@pytest.fixture
def dm(tmp_path: Path) -> dict[str, Any]:
    served = served_app(tmp_path)

    def client(token: str = served.keys["alice"]) -> Any:
        return lumaai.AsyncLumaAI(
            base_url=BASE, auth_token=token, http_client=served.http, max_retries=0
        )

    return {
        "served": served,
        "svc": served.svc,
        "store": served.store,
        "client": client,
        "bob": served.keys["bob"],
        "tmp": tmp_path,
    }


def test_create_get_list_download_delete_with_the_sdk(dm: dict[str, Any]) -> None:
    client = dm["client"]()
    made = run(
        client.generations.create(
            prompt="a red circle moving right", model="ray-2", aspect_ratio="1:1", resolution="720p"
        )
    )
    assert made.state == "queued" and made.model == "ray-2"
    assert made.request.prompt == "a red circle moving right"  # the request is echoed
    job = dm["svc"].call(GetJob(made.id, "alice"))
    assert (job.params.width, job.params.height, job.params.frames) == (96, 96, 40)  # 720p, 5 s
    assert run_next(dm["served"]) == made.id
    done = run(client.generations.get(made.id))
    assert done.state == "completed" and done.failure_reason is None
    assert done.assets.video.endswith(asset_path(made.id, "video"))
    assert done.assets.image.endswith(asset_path(made.id, "thumbnail"))
    key = {"Authorization": f"Bearer {client.auth_token}"}
    http = client._client  # the SDK's own httpx client (our ASGI transport)
    video = run(http.get(done.assets.video, headers=key))
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (dm["tmp"] / "got.mp4").write_bytes(video.content)
    probe = probe_mp4(dm["tmp"] / "got.mp4")
    assert (probe.frames, probe.width, probe.height) == (40, 96, 96)

    second = run(client.generations.create(prompt="a blue square", model="ray-flash-2"))
    page = run(client.generations.list(limit=1, offset=0))
    assert [g.id for g in page.generations] == [second.id] and page.has_more
    rest = run(client.generations.list(limit=5, offset=1))
    assert [g.id for g in rest.generations] == [made.id] and not rest.has_more
    assert run(client.generations.list(limit=5)).count == 2

    run(client.generations.delete(made.id))
    with pytest.raises(lumaai.NotFoundError):
        run(client.generations.get(made.id))


def test_keyframes_and_modify_become_the_jobs_inputs(dm: dict[str, Any]) -> None:
    client = dm["client"]()
    first = run(client.generations.create(prompt="a red circle moving right", model="ray-2"))
    run_next(dm["served"])
    image = {"type": "image", "url": data_url(image_bytes())}
    i2v = run(
        client.generations.create(
            prompt="a red circle", model="ray-2", keyframes={"frame0": image, "frame1": image}
        )
    )
    extend = run(
        client.generations.create(
            prompt="a red circle moving right",
            model="ray-2",
            keyframes={"frame0": {"type": "generation", "id": first.id}},
        )
    )
    video_url = run(client.generations.get(first.id)).assets.video
    modify = run(
        client.generations.video.modify(
            generation_type="modify_video",
            media={"url": video_url},
            mode="adhere_2",
            model="ray-2",
            prompt="a blue circle moving right",
        )
    )
    svc = dm["svc"]
    i2v_inputs = svc.call(GetJob(i2v.id, "alice")).params.inputs
    assert i2v_inputs.first_frame and i2v_inputs.last_frame and not i2v_inputs.extend_video
    first_video = svc.call(GetJob(first.id, "alice")).result_uris["video"]
    extended = svc.call(GetJob(extend.id, "alice")).params.inputs
    assert first_video.endswith(extended.extend_video)  # the earlier generation's own video
    modified = svc.call(GetJob(modify.id, "alice")).params.inputs
    assert modified.strength == 0.3 and modified.source_video  # adhere_2, a copy in the store
    assert dm["store"].get_bytes(modified.source_video) == dm["store"].get_bytes(
        extended.extend_video
    )
    assert modify.request.mode == "adhere_2"  # the echo parses as the SDK's modify request


def test_with_an_asset_secret_assets_are_signed_urls_that_need_no_key(tmp_path: Path) -> None:
    served = served_app(tmp_path, asset_secret=b"a" * 32)
    client = lumaai.AsyncLumaAI(
        base_url=BASE, auth_token=served.keys["alice"], http_client=served.http, max_retries=0
    )
    made = run(client.generations.create(prompt="a red circle", model="ray-2"))
    run_next(served)
    done = run(client.generations.get(made.id))
    assert f"/v1/assets/{made.id}/video?" in done.assets.video and "sig=" in done.assets.video
    video = run(served.http.get(done.assets.video))  # no Authorization header
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    modify = run(
        client.generations.video.modify(
            generation_type="modify_video",
            media={"url": done.assets.video},  # read from the store, not fetched back
            mode="flex_1",
            model="ray-2",
            prompt="a blue circle",
        )
    )
    inputs = served.svc.call(GetJob(modify.id, "alice")).params.inputs
    assert inputs.strength == 0.5
    assert served.store.get_bytes(inputs.source_video) == video.content


def test_other_tenants_generations_are_not_found(dm: dict[str, Any]) -> None:
    made = run(dm["client"]().generations.create(prompt="mine", model="ray-2"))
    bob = dm["client"](dm["bob"])
    with pytest.raises(lumaai.NotFoundError):
        run(bob.generations.get(made.id))
    with pytest.raises(lumaai.NotFoundError):
        run(bob.generations.delete(made.id))
    assert run(bob.generations.list()).generations == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "ray-3"}, "model 'ray-3' is not served here; use one of ['ray-2'"),
        ({"resolution": "4k"}, "resolution '4k' is not available for ray-2 here"),
        ({"duration": "9s"}, "duration '9s' is not available for ray-2 here; use one of ['5s']"),
        ({"loop": True}, "loop is not supported by ray-2 here"),
        ({"aspect_ratio": "wide"}, "aspect_ratio 'wide' must look like '16:9'"),
        ({"prompt": ""}, "prompt is required"),
        (
            {"keyframes": {"frame1": {"type": "generation", "id": "gen_x"}}},
            "keyframes.frame1 as a generation",
        ),
        ({"keyframes": {"frame0": {"type": "video", "url": "x"}}}, "keyframes.frame0"),
    ],
)
def test_what_a_model_cannot_do_is_a_400_with_our_message(
    dm: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    body = {"prompt": "a fox", "model": "ray-2", **kwargs}
    with pytest.raises(lumaai.BadRequestError) as err:
        run(dm["client"]().generations.create(**body))
    assert message in str(err.value), str(err.value)
    assert dm["svc"].call(Pull("w1", "local", ("luma-tiny",))) is None  # nothing was queued


def test_images_and_unknown_modify_modes_are_refused_clearly(dm: dict[str, Any]) -> None:
    client = dm["client"]()
    with pytest.raises(lumaai.BadRequestError, match="no model on this deployment makes images"):
        run(client.generations.image.create(prompt="a cat", model="photon-1"))
    with pytest.raises(lumaai.BadRequestError, match="mode 'wild' is unknown"):
        run(
            client.generations.video.modify(
                generation_type="modify_video",
                media={"url": "https://example.com/v.mp4"},
                mode="wild",  # type: ignore[arg-type]
                model="ray-2",
                prompt="x",
            )
        )


def test_what_the_sdk_can_call_but_is_not_served_is_a_404_naming_what_is(
    dm: dict[str, Any],
) -> None:
    client = dm["client"]()
    served = r"it serves POST /generations \(or /generations/video\), .*GET /ping"
    with pytest.raises(lumaai.NotFoundError, match=r"GET /dream-machine/v1/credits is not part"):
        run(client.credits.get())
    with pytest.raises(lumaai.NotFoundError, match=served):
        run(client.generations.upscale("some-id", generation_type="upscale_video"))
    with pytest.raises(lumaai.NotFoundError, match=r"POST /dream-machine/v1/generations/x/audio"):
        run(client.generations.audio("x", generation_type="add_audio"))
    # The served routes are unchanged: a real generation's id is still found.
    made = run(client.generations.create(prompt="a red circle moving right", model="ray-2"))
    assert run(client.generations.get(made.id)).id == made.id


def test_the_callback_body_is_the_generation_object_the_sdk_parses(dm: dict[str, Any]) -> None:
    made = run(dm["client"]().generations.create(prompt="a red circle", model="ray-2"))
    run_next(dm["served"])
    view = dm["svc"].call(GetJob(made.id, "alice"))
    payload = dream_generation(
        view, {}, lambda job, variant: "https://h" + asset_path(job, variant)
    )
    event = WebhookEvent(
        "evt_1", "https://h/hook", view.id, "succeeded", payload, 1.0, "alice", shape="object"
    )
    parsed = lumaai.types.Generation.model_validate(json.loads(event_body(event)))
    assert parsed.id == made.id and parsed.state == "completed"
    assert parsed.assets.video == "https://h" + asset_path(made.id, "video")
    assert parsed.request.prompt == "a red circle"


def test_the_model_table_is_the_config(tmp_path: Path) -> None:
    from luma_ray.errors import ConfigError  # noqa: F401  (the loader's error)

    table = DreamMachineConfig.model_validate(
        {
            "models": {
                "ray-2": {
                    "model": "luma-tiny",
                    "resolutions": {"540p": 32},
                    "durations": {"5s": 1.0, "9s": 2.0},
                    "default_resolution": "540p",
                    "default_duration": "9s",
                }
            }
        }
    )
    from luma_ray.api.dream_machine import CreateVideo, video_fields

    fields = video_fields(CreateVideo(model="ray-2", prompt="x", aspect_ratio="9:16"), table)
    assert fields["size"] == "32x56" and fields["seconds"] == 2.0
    with pytest.raises(ValueError, match="default_duration '7s' is not listed"):
        DreamMachineConfig.model_validate(
            {
                "models": {
                    "x": {
                        "model": "m",
                        "resolutions": {"a": 8},
                        "durations": {"1s": 1},
                        "default_resolution": "a",
                        "default_duration": "7s",
                    }
                }
            }
        )
