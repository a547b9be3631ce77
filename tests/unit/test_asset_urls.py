"""Signed, expiring asset URLs: the real app over the in-process scheduler service, a real
journal, key store and file store, FastAPI's TestClient; a fake wall clock moves time."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.assets import RangeNotSatisfiable, byte_range
from luma_ray.api.keys import KeyStore
from luma_ray.config import default_tiers, parse_config
from luma_ray.errors import Forbidden
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import InMemoryBlobStore, LocalBlobStore
from luma_ray.storage.keys import result_key
from luma_ray.wire.assets import AssetSigner

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
SECRET = b"0123456789abcdef0123456789abcdef"
VIDEO = bytes(range(256)) * 40  # 10240 bytes, every byte's value is its offset mod 256
THUMB = b"\x89PNG\r\n\x1a\n" + b"p" * 100


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def build(tmp_path: Path, **settings):
    clock = Clock()
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, clock)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    app = create_app(
        InProcessScheduler(svc),
        keys,
        store,
        ApiSettings(asset_secret=SECRET, **settings),
        wall_clock=clock,
    )
    alice, record = keys.create("alice", "api", now_s=0)
    return {
        "client": TestClient(app),
        "svc": svc,
        "store": store,
        "keys": keys,
        "key_id": record.key_id,
        "clock": clock,
        "alice": {"Authorization": f"Bearer {alice}"},
    }


@pytest.fixture
def api(tmp_path: Path):
    return build(tmp_path)


def finish(api, prompt: str = "a fox") -> str:
    """Submit as alice, lease, store a video and a thumbnail, complete; the job's id."""
    svc, store = api["svc"], api["store"]
    job = api["client"].post("/v1/generations", json={"prompt": prompt}, headers=api["alice"])
    job_id = job.json()["id"]
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None and lease.job_id == job_id
    uris = {
        "video": store.put_bytes(result_key(job_id, lease.token, "video.mp4"), VIDEO),
        "thumbnail": store.put_bytes(result_key(job_id, lease.token, "thumb.png"), THUMB),
    }
    svc.complete(job_id, lease.token, uris, "v1")
    return job_id


def assets_of(api, job_id: str) -> dict[str, str]:
    r = api["client"].get(f"/v1/generations/{job_id}", headers=api["alice"])
    assert r.status_code == 200, r.text
    return r.json()["assets"]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def get(api, url: str, **headers: str):
    """GET without any API key."""
    return api["client"].get(path_of(url), headers=headers)


# -- the signer --------------------------------------------------------------------------


def test_sign_and_check_round_trip() -> None:
    signer = AssetSigner(SECRET, ttl_s=3600)
    url = signer.url("gen_abc", "video", 1000.0, "https://api.example.com/")
    assert url.startswith("https://api.example.com/v1/assets/gen_abc/video?exp=4600&sig=")
    q = parse_qs(urlsplit(url).query)
    assert signer.check("gen_abc", "video", q["exp"][0], q["sig"][0], 4599.0) == 4600
    for job, variant, exp, now, secret in [
        ("gen_abd", "video", "4600", 1000.0, SECRET),  # another job
        ("gen_abc", "thumbnail", "4600", 1000.0, SECRET),  # another variant
        ("gen_abc", "video", "4601", 1000.0, SECRET),  # a later expiry
        ("gen_abc", "video", "4600", 4600.0, SECRET),  # expired
        ("gen_abc", "video", "4600", 1000.0, b"another-secret-of-32-bytes......"),
    ]:
        with pytest.raises(Forbidden):
            AssetSigner(secret).check(job, variant, exp, q["sig"][0], now)


def test_the_signer_keeps_its_secret_out_of_repr() -> None:
    assert "0123456789abcdef" not in repr(AssetSigner(SECRET))
    assert "0123456789abcdef" not in repr(ApiSettings(asset_secret=SECRET))


# -- the views ---------------------------------------------------------------------------


def test_a_succeeded_generation_shows_absolute_signed_urls(api) -> None:
    job_id = finish(api)
    queued = api["client"].post("/v1/generations", json={"prompt": "x"}, headers=api["alice"])
    assert queued.json()["assets"] == {}  # nothing to fetch before it succeeds
    assets = assets_of(api, job_id)
    assert set(assets) == {"video", "thumbnail"}
    exp = 1_700_000_000 + 86_400  # the default lifetime: 24 h
    pattern = rf"http://testserver/v1/assets/{job_id}/video\?exp={exp}&sig=[A-Za-z0-9_-]{{43}}"
    assert re.fullmatch(pattern, assets["video"]), assets["video"]
    result_urls = api["client"].get(f"/v1/generations/{job_id}", headers=api["alice"])
    assert result_urls.json()["result_urls"]["video"].endswith("/content?variant=video")


def test_public_url_and_lifetime_come_from_the_settings(tmp_path: Path) -> None:
    api = build(tmp_path, public_url="https://videos.example.com/api", asset_ttl_s=600)
    job_id = finish(api)
    video = assets_of(api, job_id)["video"]
    assert video.startswith(f"https://videos.example.com/api/v1/assets/{job_id}/video?exp=")
    assert parse_qs(urlsplit(video).query)["exp"] == [str(1_700_000_000 + 600)]


# -- serving -----------------------------------------------------------------------------


def test_an_asset_url_needs_no_key_and_says_what_it_is(api) -> None:
    job_id = finish(api)
    assets = assets_of(api, job_id)
    api["clock"].now += 86_400 - 100  # 100 s left
    video = get(api, assets["video"])
    assert video.status_code == 200 and video.content == VIDEO
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["accept-ranges"] == "bytes"
    assert video.headers["cache-control"] == "private, max-age=100"
    assert video.headers["content-disposition"] == f'inline; filename="{job_id}.mp4"'
    thumb = get(api, assets["thumbnail"])
    assert thumb.status_code == 200 and thumb.content == THUMB
    assert thumb.headers["content-type"] == "image/png"


def test_a_range_request_gets_206_with_those_bytes(api) -> None:
    url = assets_of(api, finish(api))["video"]
    r = get(api, url, Range="bytes=300-599")
    assert r.status_code == 206
    assert r.content == VIDEO[300:600]
    assert r.headers["content-range"] == f"bytes 300-599/{len(VIDEO)}"
    assert r.headers["content-length"] == "300" and r.headers["content-type"] == "video/mp4"
    tail = get(api, url, Range="bytes=-100")  # the last 100 bytes
    assert tail.status_code == 206 and tail.content == VIDEO[-100:]
    rest = get(api, url, Range="bytes=10000-")  # from byte 10000 to the end
    assert rest.status_code == 206 and rest.content == VIDEO[10000:]
    assert rest.headers["content-range"] == f"bytes 10000-10239/{len(VIDEO)}"
    past = get(api, url, Range="bytes=10200-99999")  # clipped at the end
    assert past.status_code == 206 and past.content == VIDEO[10200:]


def test_a_range_past_the_end_is_416(api) -> None:
    url = assets_of(api, finish(api))["video"]
    r = get(api, url, Range=f"bytes={len(VIDEO)}-")
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(VIDEO)}"
    assert r.json()["code"] == "range_not_satisfiable"


def test_if_range_with_another_etag_gets_the_whole_object(api) -> None:
    url = assets_of(api, finish(api))["video"]
    etag = get(api, url).headers["etag"]
    same = get(api, url, Range="bytes=0-9", **{"If-Range": etag})
    assert same.status_code == 206 and same.content == VIDEO[:10]
    other = get(api, url, Range="bytes=0-9", **{"If-Range": '"something-else"'})
    assert other.status_code == 200 and other.content == VIDEO


def test_an_expired_url_is_403(api) -> None:
    url = assets_of(api, finish(api))["video"]
    api["clock"].now += 86_400
    r = get(api, url)
    assert r.status_code == 403 and "expired" in r.json()["detail"]


def test_a_changed_url_is_403_and_the_answer_does_not_repeat_the_signature(api) -> None:
    job_id = finish(api)
    other = finish(api, "another fox")
    url = assets_of(api, job_id)["video"]
    q = parse_qs(urlsplit(url).query)
    exp, sig = q["exp"][0], q["sig"][0]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    for changed in [
        f"/v1/assets/{job_id}/video?exp={int(exp) + 1}&sig={sig}",  # a later expiry
        f"/v1/assets/{job_id}/video?exp={exp}&sig={flipped}",
        f"/v1/assets/{job_id}/thumbnail?exp={exp}&sig={sig}",  # another variant
        f"/v1/assets/{other}/video?exp={exp}&sig={sig}",  # another job
        f"/v1/assets/{job_id}/video?exp={exp}",  # no signature
        f"/v1/assets/{job_id}/video?exp=&sig={sig}",
        f"/v1/assets/{job_id}/video?exp=99999999999999999&sig={sig}",
    ]:
        r = api["client"].get(changed)
        assert r.status_code == 403, (changed, r.status_code)
        assert sig not in r.text and r.json()["code"] == "forbidden"
    assert api["client"].get(path_of(url)).status_code == 200


def test_a_url_of_another_tenants_job_does_not_open_this_one(api) -> None:
    """A signature is bound to one job id, and so to the tenant that owns it."""
    bob, _ = api["keys"].create("bob", "free", now_s=0)
    mine = finish(api)
    r = api["client"].post(
        "/v1/generations", json={"prompt": "b"}, headers={"Authorization": f"Bearer {bob}"}
    )
    bobs = r.json()["id"]
    q = parse_qs(urlsplit(assets_of(api, mine)["video"]).query)
    r = api["client"].get(f"/v1/assets/{bobs}/video?exp={q['exp'][0]}&sig={q['sig'][0]}")
    assert r.status_code == 403


def test_a_deleted_generation_is_404_even_with_a_valid_signature(api) -> None:
    job_id = finish(api)
    url = assets_of(api, job_id)["video"]
    assert get(api, url).status_code == 200
    assert (
        api["client"].delete(f"/v1/generations/{job_id}", headers=api["alice"]).status_code == 200
    )
    r = get(api, url)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_revoking_the_key_leaves_issued_urls_valid_until_they_expire(api) -> None:
    url = assets_of(api, finish(api))["video"]
    api["keys"].revoke(api["key_id"], now_s=1)
    gone = api["client"].get("/v1/generations", headers=api["alice"])
    assert gone.status_code == 401  # the key no longer works
    assert get(api, url).status_code == 200  # its URLs still do
    api["clock"].now += 86_400
    assert get(api, url).status_code == 403  # until they expire


def test_without_a_secret_no_assets_are_issued_or_served(tmp_path: Path) -> None:
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    client = TestClient(create_app(InProcessScheduler(svc), keys, InMemoryBlobStore()))
    sig = "A" * 43
    assert client.get(f"/v1/assets/gen_x/video?exp=9999999999&sig={sig}").status_code == 404


# -- ranges, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=90-", 100, (90, 100)),
        ("bytes=90-500", 100, (90, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=-500", 100, (0, 100)),
        ("bytes=5-3", 100, None),  # invalid: ignored, the whole object
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole object
        ("items=0-1", 100, None),  # another unit
        ("bytes=x-1", 100, None),
        ("bytes=-", 100, None),
    ],
)
def test_byte_range(header: str | None, size: int, span: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == span


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_byte_range_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, size)


# -- the stores' ranged reads ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_stores_read_a_range_and_a_size(tmp_path: Path, kind: str) -> None:
    store = LocalBlobStore(tmp_path / "s") if kind == "local" else InMemoryBlobStore()
    store.put_bytes("a/b.bin", VIDEO)
    assert store.size("a/b.bin") == len(VIDEO)
    assert store.get_range("a/b.bin", 10, 20) == VIDEO[10:20]
    assert store.get_range("a/b.bin", 10_000, 99_999) == VIDEO[10_000:]
    assert store.get_range("a/b.bin", 5, 5) == b""
