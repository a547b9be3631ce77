"""What a webhook carries: the scheduler's actor (built in process, no Ray cluster) sends the
generation as the native API shows it, to a real receiver on 127.0.0.1, never the scheduler's
internal view with its storage URIs."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from luma_ray.config import WebhookConfig
from luma_ray.jobs import ModelLimits
from luma_ray.runtime.actor import ActorSettings, SchedulerActor
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.wire.generation import generation_view
from tests.unit.hook_servers import HookServer

LIMITS = ModelLimits(64, 128, 128, 50, 4, 8, 8)
STORAGE = "s3://acme-private-results/results/2024/host-7/"


@pytest.fixture
def receiver() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


@pytest.fixture
def actor(tmp_path: Path) -> Iterator[SchedulerActor]:
    secret = tmp_path / "webhook.secret"
    secret.write_text("0123456789abcdef\n")
    built = SchedulerActor(
        ActorSettings(
            config={},
            journal_path=str(tmp_path / "journal.sqlite"),
            models={"luma-tiny": LIMITS},
            webhook_secret_path=str(secret),
            allow_private_callbacks=True,
        )
    )
    yield built
    assert built.webhooks is not None
    built.webhooks.close(timeout_s=1.0)


def test_payload_is_the_api_view_without_storage_uris(
    actor: SchedulerActor, receiver: HookServer
) -> None:
    service = actor.service
    job = service.submit(
        SubmitRequest(prompt="a paper boat", tenant="acme", callback_url=receiver.url)
    )
    lease = service.pull("w1", "local", ["luma-tiny"])
    assert lease is not None and lease.job_id == job.id
    uris = {"video": STORAGE + "video.mp4", "thumbnail": STORAGE + "thumb.png"}
    done = service.complete(job.id, lease.token, uris, "v1")
    assert actor.webhooks is not None and actor.webhooks.flush(5.0)

    by_type = {hit.document["type"]: hit for hit in receiver.hits}
    assert set(by_type) == {"generation.queued", "generation.succeeded"}
    for hit in receiver.hits:
        assert b"s3://" not in hit.body and b"acme-private-results" not in hit.body
        assert b"result_uris" not in hit.body and b"host-7" not in hit.body
        assert "tenant" not in hit.document["data"]
    data = by_type["generation.succeeded"].document["data"]
    assert data["result_urls"] == {
        "video": f"/v1/generations/{job.id}/content?variant=video",
        "thumbnail": f"/v1/generations/{job.id}/content?variant=thumbnail",
    }
    # The same object GET /v1/generations/{id} returns (JSON round trip: tuples become lists).
    assert data == json.loads(json.dumps(generation_view(done)))
    assert data["object"] == "generation" and data["state"] == "succeeded"


def test_the_actor_builds_its_sender_from_its_settings(tmp_path: Path) -> None:
    """launch.start passes RuntimeConfig.webhooks in ActorSettings (pickled by Ray)."""
    secret = tmp_path / "webhook.secret"
    secret.write_text("0123456789abcdef\n")
    hooks = WebhookConfig(retry_schedule_s=(1.0, 2.0), attempt_timeout_s=3.0, delivery_threads=2)
    settings = ActorSettings(
        config={},
        journal_path=str(tmp_path / "journal.sqlite"),
        models={"luma-tiny": LIMITS},
        webhook_secret_path=str(secret),
        webhooks=hooks,
    )
    assert pickle.loads(pickle.dumps(settings)) == settings
    built = SchedulerActor(settings)
    assert built.webhooks is not None
    try:
        assert built.webhooks.settings == hooks
    finally:
        built.webhooks.close(timeout_s=0.1)


def test_a_succeeded_webhook_carries_signed_asset_urls(
    tmp_path: Path, receiver: HookServer
) -> None:
    """The actor signs with the asset secret launch.start made, on the public URL."""
    from urllib.parse import parse_qs, urlsplit

    from luma_ray.wire.assets import AssetSigner

    (tmp_path / "webhook.secret").write_text("0123456789abcdef\n")
    (tmp_path / "asset.secret").write_text("fedcba9876543210fedcba9876543210\n")
    actor = SchedulerActor(
        ActorSettings(
            config={},
            journal_path=str(tmp_path / "journal.sqlite"),
            models={"luma-tiny": LIMITS},
            webhook_secret_path=str(tmp_path / "webhook.secret"),
            allow_private_callbacks=True,
            asset_secret_path=str(tmp_path / "asset.secret"),
            asset_ttl_s=600,
            public_url="https://videos.example.com",
        )
    )
    try:
        service = actor.service
        job = service.submit(
            SubmitRequest(prompt="a boat", tenant="acme", callback_url=receiver.url)
        )
        lease = service.pull("w1", "local", ["luma-tiny"])
        assert lease is not None
        service.complete(job.id, lease.token, {"video": STORAGE + "video.mp4"}, "v1")
        assert actor.webhooks is not None and actor.webhooks.flush(5.0)
    finally:
        assert actor.webhooks is not None
        actor.webhooks.close(timeout_s=1.0)
    by_type = {hit.document["type"]: hit.document["data"] for hit in receiver.hits}
    assert by_type["generation.queued"]["assets"] == {}
    video = by_type["generation.succeeded"]["assets"]["video"]
    assert video.startswith(f"https://videos.example.com/v1/assets/{job.id}/video?exp=")
    q = parse_qs(urlsplit(video).query)
    signer = AssetSigner(b"fedcba9876543210fedcba9876543210")
    now = int(q["exp"][0]) - 600  # issued when the event was sent, living 600 s
    assert signer.check(job.id, "video", q["exp"][0], q["sig"][0], now) == now + 600
