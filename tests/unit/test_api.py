"""The HTTP API in process: real FastAPI app, real key store, real scheduler service and
journal, real file store; FastAPI's TestClient as the HTTP client. No Ray."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import default_tiers, parse_config
from luma_ray.models.interface import ModelLimits
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore
from luma_ray.storage.memory import InMemoryBlobStore

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(tmp_path: Path):
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    repo = ModelRepository(InMemoryBlobStore(), Clock())
    app = create_app(
        InProcessScheduler(svc), keys, store, ApiSettings(allow_private_callbacks=True), repo
    )
    alice, _ = keys.create("alice", "api", now_s=0)
    bob, _ = keys.create("bob", "free", now_s=0)
    root, _ = keys.create("ops", "api", admin=True, now_s=0)
    client = TestClient(app)
    return {
        "client": client,
        "svc": svc,
        "store": store,
        "repo": repo,
        "tmp": tmp_path,
        "alice": {"Authorization": f"Bearer {alice}"},
        "bob": {"Authorization": f"Bearer {bob}"},
        "admin": {"Authorization": f"Bearer {root}"},
    }


def create(api, who: str = "alice", **body):
    return api["client"].post("/v1/generations", json={"prompt": "a fox", **body}, headers=api[who])


def test_create_get_list_cancel_delete(api) -> None:
    c = api["client"]
    r = create(api, seconds=2, aspect_ratio="16:9", metadata={"run": "7"})
    assert r.status_code == 201, r.text
    gen = r.json()
    assert gen["state"] == "queued" and gen["tier"] == "api"  # the key decides the tier
    assert gen["request"]["frames"] == 16 and gen["request"]["width"] > gen["request"]["height"]
    assert gen["queue_position"] == 0 and gen["metadata"] == {"run": "7"}
    assert c.get(f"/v1/generations/{gen['id']}", headers=api["alice"]).json()["id"] == gen["id"]
    listed = c.get("/v1/generations", headers=api["alice"]).json()
    assert [g["id"] for g in listed["data"]] == [gen["id"]]
    assert (
        c.post(f"/v1/generations/{gen['id']}/cancel", headers=api["alice"]).json()["state"]
        == "cancelled"
    )
    assert c.delete(f"/v1/generations/{gen['id']}", headers=api["alice"]).json()["deleted"]
    assert c.get(f"/v1/generations/{gen['id']}", headers=api["alice"]).status_code == 404


def test_other_tenants_jobs_are_404_everywhere(api) -> None:
    c = api["client"]
    gen = create(api).json()["id"]
    for method, path in [
        ("GET", f"/v1/generations/{gen}"),
        ("POST", f"/v1/generations/{gen}/cancel"),
        ("DELETE", f"/v1/generations/{gen}"),
        ("GET", f"/v1/generations/{gen}/content"),
        ("GET", f"/v1/generations/{gen}/events"),
        ("GET", f"/v1/videos/{gen}"),
        ("DELETE", f"/v1/videos/{gen}"),
        ("GET", f"/v1/videos/{gen}/content"),
    ]:
        r = c.request(method, path, headers=api["bob"])
        assert r.status_code == 404, (method, path, r.status_code)
        if path.startswith("/v1/videos"):  # OpenAI's error shape there
            assert r.headers["content-type"] == "application/json"
            assert r.json()["error"]["code"] == "not_found"
        else:
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "not_found"
    assert c.get("/v1/generations", headers=api["bob"]).json()["data"] == []
    assert c.get("/v1/videos", headers=api["bob"]).json()["data"] == []
    assert c.get(f"/v1/generations/{gen}", headers=api["alice"]).status_code == 200


def test_keys_401_and_admin_403(api) -> None:
    c = api["client"]
    for headers in (
        {},
        {"Authorization": "Bearer lr_000000000000_wrong"},
        {"Authorization": "Basic abc"},
    ):
        r = c.get("/v1/generations", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    assert c.get("/v1/admin/queues", headers=api["alice"]).status_code == 403
    stats = c.get("/v1/admin/queues", headers=api["admin"])
    assert stats.status_code == 200 and "tiers" in stats.json()
    assert c.post("/v1/admin/models/luma-tiny/promote", headers=api["alice"]).status_code == 403


def test_a_queues_read_key_reads_the_queue_page_and_nothing_else(api) -> None:
    c = api["client"]
    keys = c.app.state.ports.keys
    viewer = {
        "Authorization": f"Bearer {keys.create('ops', 'free', scopes=['queues:read'], now_s=0)[0]}"
    }
    for path in ("/v1/admin/queue-view", "/v1/admin/queues"):
        assert c.get(path, headers=viewer).status_code == 200, path
        assert c.get(path, headers=api["admin"]).status_code == 200, path  # admin implies it
        r = c.get(path, headers=api["alice"])  # a plain user key
        assert r.status_code == 403 and "queues:read" in r.json()["detail"], path
    for method, path in [
        ("POST", "/v1/admin/models/luma-tiny/promote"),
        ("POST", "/v1/admin/models/luma-tiny/rollback"),
        ("GET", "/v1/admin/models/luma-tiny"),
        ("POST", "/v1/generations"),
        ("GET", "/v1/generations"),
        ("POST", "/v1/videos"),
        ("GET", "/v1/limits"),
    ]:
        r = c.request(method, path, headers=viewer, json={"version": "v1", "prompt": "x"})
        body = r.json().get("error") or r.json()  # OpenAI's error shape under /v1/videos
        assert r.status_code == 403 and body["code"] == "forbidden", (method, path, r.text)
    page = c.get("/admin/queues").text
    assert "queues:read" in page and "--scope queues:read" in page


def test_the_queue_view_has_the_hour_the_top_tenants_and_the_failures(api) -> None:
    c, svc = api["client"], api["svc"]
    for who in ("alice", "alice", "bob"):
        assert create(api, who).status_code == 201
    lease = svc.pull("local/tiny/1", "local", ["luma-tiny", "luma-tiny@v1"])  # alice's (api)
    svc.clock.now += 59  # the next minute (the clock starts 20 s into one); w1 still seen
    svc.fail(lease.job_id, lease.token, "model_error", "CUDA out of memory", retryable=False)
    view = c.get("/v1/admin/queue-view", headers=api["admin"]).json()
    then, now = view["history"]  # the pull's minute, and this read's
    assert then["at_s"] == 1_700_000_000 - 1_700_000_000 % 60
    assert then["tiers"]["api"]["dispatched"] == 1 and then["pools"] == {}
    assert now["tiers"]["api"]["depth"] == 1 and now["tiers"]["free"]["depth"] == 1
    assert now["tiers"]["free"]["oldest_wait_s"] == 59.0
    assert now["pools"] == {"tiny": {"busy": 0, "idle": 1}}
    assert view["tenants"] == {
        "api": {"by_queued": [{"tenant": "alice", "queued": 1, "leased": 0}], "by_leased": []},
        "free": {"by_queued": [{"tenant": "bob", "queued": 1, "leased": 0}], "by_leased": []},
    }
    (failure,) = view["failures"]
    assert failure["job_id"] == lease.job_id and failure["tenant"] == "alice"
    assert (failure["code"], failure["message"], failure["final"]) == (
        "model_error",
        "CUDA out of memory",
        True,
    )
    page = c.get("/admin/queues").text  # one static page: no key in it, nothing to fetch
    assert api["admin"]["Authorization"].split()[1] not in page and not re.search(
        r"\b(src|href)=", page
    )
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}


def test_idempotency_key(api) -> None:
    headers = {**api["alice"], "Idempotency-Key": "abc"}
    c = api["client"]
    one = c.post("/v1/generations", json={"prompt": "x"}, headers=headers).json()["id"]
    two = c.post("/v1/generations", json={"prompt": "x"}, headers=headers).json()["id"]
    assert one == two
    r = c.post("/v1/generations", json={"prompt": "y"}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    assert len(c.get("/v1/generations", headers=api["alice"]).json()["data"]) == 1


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"prompt": ""}, 400, "invalid_request"),
        ({"prompt": "x", "model": "nope"}, 400, "invalid_request"),
        ({"prompt": "x", "size": "60x64"}, 400, "invalid_request"),
        ({"prompt": "x", "frames": 0}, 422, "validation_error"),
        ({"prompt": "x", "colour": "red"}, 422, "validation_error"),
        ({"prompt": "x", "callback_url": "ftp://x"}, 400, "invalid_request"),
        ({"prompt": "x", "size": "64x64", "aspect_ratio": "1:1"}, 400, "invalid_request"),
        ({"nope": 1}, 422, "validation_error"),
    ],
)
def test_bad_input_is_a_problem_not_a_500(api, body, status, code) -> None:
    r = api["client"].post("/v1/generations", json=body, headers=api["alice"])
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code and r.json()["detail"]


def test_too_large_body_is_413(api) -> None:
    r = api["client"].post(
        "/v1/generations",
        content=b"x" * (2 << 20),
        headers={**api["alice"], "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_openai_shapes(api) -> None:
    c = api["client"]
    r = c.post(
        "/v1/videos",
        data={"prompt": "a fox", "seconds": "4", "size": "1280x720"},
        headers=api["alice"],
    )
    assert r.status_code == 200, r.text
    video = r.json()
    assert video["object"] == "video" and video["status"] == "queued"
    assert video["seconds"] == "4"
    w, h = (int(v) for v in video["size"].split("x"))
    assert w > h and w <= 128 and w % 8 == 0 and h % 8 == 0
    page = c.get("/v1/videos", headers=api["alice"]).json()
    assert page["object"] == "list" and page["first_id"] == video["id"]
    gone = c.delete(f"/v1/videos/{video['id']}", headers=api["alice"]).json()
    assert gone == {"id": video["id"], "object": "video.deleted", "deleted": True}


def test_admin_promote_rollback_and_status(api) -> None:
    c, repo = api["client"], api["repo"]
    for version in ("v1", "v2"):
        folder = api["tmp"] / "src" / version
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "model.yaml").write_text("entrypoint: pkg.mod:Model\n")
        (folder / "checkpoints" / "w.bin").write_bytes(version.encode() * 10)
        repo.publish("luma-tiny", version, folder)
    url = "/v1/admin/models/luma-tiny"
    promote = c.post(f"{url}/promote", json={"version": "v1"}, headers=api["admin"])
    assert promote.status_code == 200 and promote.json()["active"] == "v1"
    body = {"version": "v2", "max_unavailable": "50%"}
    promote = c.post(f"{url}/promote", json=body, headers=api["admin"])
    assert promote.json() == {
        "model": "luma-tiny",
        "active": "v2",
        "previous": "v1",
        "max_unavailable": "50%",
    }
    rolled = c.post(f"{url}/rollback", headers=api["admin"])
    assert rolled.json()["active"] == "v1" and repo.active("luma-tiny").active == "v1"
    status = c.get(url, headers=api["admin"]).json()
    assert [v["version"] for v in status["versions"]] == ["v1", "v2"]
    assert [h["action"] for h in status["history"]] == ["promote", "promote", "rollback"]
    assert status["rollout"]["model"] == "luma-tiny"
    # Refusals: each a clear 4xx, nothing changed.
    for path, body, code, text in [
        (f"{url}/promote", {"version": "v9"}, 404, "no version 'v9'"),
        (f"{url}/promote", None, 400, "needs a JSON body"),
        (f"{url}/promote", {"version": "../x"}, 400, "version '../x' is invalid"),
        (f"{url}/explode", None, 404, "use promote or rollback"),
        (f"{url}/promote", {"version": "v2", "max_unavailable": "0%"}, 400, "percentage"),
        ("/v1/admin/models/Bad..Name/rollback", None, 400, "is invalid"),
    ]:
        r = c.post(path, json=body, headers=api["admin"])
        assert r.status_code == code and text in r.json()["detail"], (path, r.text)
    assert c.get(url, headers=api["alice"]).status_code == 403
    assert repo.active("luma-tiny").active == "v1"
    listed = c.get("/v1/models", headers=api["alice"]).json()["data"]
    assert [(m["id"], m["version"]) for m in listed] == [("luma-tiny", "v1")]


def test_a_pipelined_generation_shows_its_stage_caption_and_spritesheet(tmp_path: Path) -> None:
    """docs/pipelines.md: the generation view carries the stage and the caption; the
    thumbnail stage's spritesheet is served like the video (native and OpenAI routes)."""
    config = parse_config({"pipelines": {"luma-tiny": ["generate", "caption", "thumbnail"]}})
    svc = SchedulerService(config, Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    app = create_app(InProcessScheduler(svc), keys, store, ApiSettings(), None)
    key, _ = keys.create("alice", "api", now_s=0)
    c, auth = TestClient(app), {"Authorization": f"Bearer {key}"}
    gen = c.post("/v1/generations", json={"prompt": "a fox"}, headers=auth).json()
    assert gen["stage"] == "generate" and gen["caption"] is None
    uris = {}
    for stage in ("generate", "caption", "thumbnail"):
        lease = svc.pull(
            "w", "local", ["luma-tiny" if stage == "generate" else f"luma-tiny:{stage}"]
        )
        assert lease is not None
        if stage == "generate":
            uris = {
                "video": store.put_bytes(f"results/{gen['id']}/1/video.mp4", b"mp4", "video/mp4")
            }
        elif stage == "thumbnail":
            key_ = f"results/{gen['id']}/3/spritesheet.png"
            uris = {"spritesheet": store.put_bytes(key_, b"png", "image/png")}
        else:
            uris = {}
        svc.complete(
            lease.job_id, lease.token, uris, caption="a fox runs" if stage == "caption" else None
        )
        if stage == "generate":
            mid = c.get(f"/v1/generations/{gen['id']}", headers=auth).json()
            assert (mid["state"], mid["stage"]) == ("queued", "caption")
    done = c.get(f"/v1/generations/{gen['id']}", headers=auth).json()
    assert (done["state"], done["stage"], done["caption"]) == (
        "succeeded",
        "thumbnail",
        "a fox runs",
    )
    sheet = done["result_urls"]["spritesheet"]
    assert c.get(sheet, headers=auth).content == b"png"
    r = c.get(f"/v1/videos/{gen['id']}/content?variant=spritesheet", headers=auth)
    assert r.status_code == 200 and r.content == b"png"
