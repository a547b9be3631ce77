"""The HTTP client against the real app in process: real scheduler service and journal, real
key store, real file store. The sync client rides FastAPI's TestClient (it streams), the async
one ``httpx.ASGITransport``. A worker thread drives jobs through the service under
the backend's lock, as the API does. No Ray, no sockets, no sleeps as synchronisation."""

from __future__ import annotations

import asyncio
import pickle
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.client.http import (
    ApiError,
    AuthError,
    BadRequestError,
    BusyError,
    ConflictError,
    Generation,
    LumaClient,
    NotFoundError,
    SseParser,
)
from luma_ray.client.http_async import AsyncLumaClient
from luma_ray.config import default_tiers, parse_config
from luma_ray.errors import BackPressure, NotFound
from luma_ray.models.interface import ModelLimits
from luma_ray.notify.retries import parse_retry_after
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Assignment, InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

pytestmark = pytest.mark.timeout(60)

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
URL = "http://testserver"
VIDEO = b"\x00\x00\x00\x18ftypmp42 not really a video"


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class AppTransport(httpx.BaseTransport):
    """An httpx transport over FastAPI's TestClient, which runs the app in a portal thread and
    streams responses. The TestClient itself cannot be the client's transport: Starlette
    builds it on ``httpx2`` when that is installed, a different package from ``httpx``."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.sent: list[str] = []  # "METHOD /path" of every request, for tests to check

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        inner = self.client.send(
            self.client.build_request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                content=request.read(),
            ),
            stream=True,
        )
        return httpx.Response(
            inner.status_code, headers=inner.headers.multi_items(), stream=Body(inner)
        )


class Body(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner.iter_raw()

    def close(self) -> None:
        self.inner.close()


@dataclass
class Server:
    app: Any
    backend: InProcessScheduler
    store: LocalBlobStore
    alice: str
    bob: str

    def transport(self) -> AppTransport:
        return AppTransport(TestClient(self.app))

    def client(self, key: str | None, **kwargs: Any) -> LumaClient:
        return LumaClient(URL, key, transport=kwargs.pop("transport", self.transport()), **kwargs)

    def lease(self, job_id: str) -> Assignment:
        """Pull as a worker until the scheduler hands out ``job_id``."""
        with self.backend._lock:  # InProcessScheduler holds this around every call
            lease = self.backend.inner.pull("w1", "local", ["luma-tiny"])
        assert lease is not None and lease.job_id == job_id
        return lease

    def step(self, lease: Assignment, step: int, total: int) -> None:
        with self.backend._lock:
            self.backend.inner.heartbeat(lease.job_id, lease.token, step, total)

    def finish(self, lease: Assignment, data: bytes = VIDEO) -> None:
        uri = self.store.put_bytes(f"results/{lease.job_id}/1/video.mp4", data)
        with self.backend._lock:
            self.backend.inner.complete(lease.job_id, lease.token, {"video": uri})


def make_server(tmp_path: Path, **config: Any) -> Server:
    svc = SchedulerService(parse_config(config), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    backend = InProcessScheduler(svc)
    settings = ApiSettings(allow_private_callbacks=True, sse_poll_s=0.005)
    app = create_app(backend, keys, store, settings)
    alice, _ = keys.create("alice", "api", now_s=0)
    bob, _ = keys.create("bob", "free", now_s=0)
    return Server(app, backend, store, alice, bob)


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return make_server(tmp_path)


@pytest.fixture
def wire(server: Server) -> AppTransport:
    """The transport under ``alice``: its ``sent`` shows which requests a call made."""
    return server.transport()


@pytest.fixture
def alice(server: Server, wire: AppTransport) -> Iterator[LumaClient]:
    with server.client(server.alice, transport=wire) as client:
        yield client


def in_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``fn`` on a worker thread now; the returned callable joins it and re-raises."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn)

    def join() -> Any:
        try:
            return future.result(timeout=20)
        finally:
            pool.shutdown()

    return join


def test_create_get_list_across_pages_cancel_delete(server: Server, alice: LumaClient) -> None:
    gen = alice.create("a fox", seconds=2, aspect_ratio="16:9", metadata={"run": "7"})
    assert isinstance(gen, Generation) and gen.state == "queued" and not gen.done
    assert gen.tier == "api" and gen.model == "luma-tiny" and gen.prompt == "a fox"
    assert gen.queue_position == 0 and gen.progress.step == 0 and gen.result_urls == {}
    assert gen.raw["metadata"] == {"run": "7"}  # fields the dataclass lacks stay in raw
    assert gen.raw["request"]["width"] > gen.raw["request"]["height"]
    assert alice.get(gen.id) == gen

    ids = [gen.id] + [alice.create(f"p{i}", frames=4).id for i in range(4)]
    listed = [g.id for g in alice.list(limit=2)]  # three pages of at most two
    assert sorted(listed) == sorted(ids) and len(listed) == 5
    assert [g.id for g in alice.list(state="queued", limit=100)] == listed

    cancelled = alice.cancel(gen.id)
    assert cancelled.state == "cancelled" and cancelled.done
    assert [g.id for g in alice.list(state="cancelled")] == [gen.id]
    assert alice.delete(gen.id) is None
    with pytest.raises(NotFoundError):
        alice.get(gen.id)
    assert alice.limits()["tier"]["name"] == "api"
    assert [m["id"] for m in alice.models()] == ["luma-tiny"]


def test_errors_carry_status_code_and_detail(server: Server, alice: LumaClient) -> None:
    gen = alice.create("a fox")
    with server.client(server.bob) as bob, pytest.raises(NotFoundError) as missing:
        bob.get(gen.id)  # another tenant's job looks absent
    err = missing.value
    assert err.status == 404 and err.code == "not_found" and gen.id in err.detail
    assert isinstance(err, NotFound) and "\n" not in str(err) and str(err).startswith("HTTP 404")
    assert pickle.loads(pickle.dumps(err)).detail == err.detail

    for key in ("lr_000000000000_wrong", None):
        with server.client(key) as stranger, pytest.raises(AuthError) as denied:
            stranger.get(gen.id)
        assert denied.value.status == 401 and denied.value.code == "unauthorized"

    with pytest.raises(BadRequestError) as bad:
        alice.create("a fox", model="nope")
    assert bad.value.status == 400 and bad.value.code == "invalid_request"
    assert "unknown model 'nope'" in bad.value.detail
    with pytest.raises(BadRequestError) as invalid:
        alice.create("a fox", frames=0)
    assert invalid.value.status == 422 and invalid.value.code == "validation_error"

    first = alice.create("x", idempotency_key="abc")
    assert alice.create("x", idempotency_key="abc").id == first.id
    with pytest.raises(ConflictError) as conflict:
        alice.create("y", idempotency_key="abc")
    assert conflict.value.status == 409 and conflict.value.code == "conflict"


def test_429_carries_retry_after_and_retry_on_busy_waits_it_out(tmp_path: Path) -> None:
    server = make_server(tmp_path, tenant_limits={"api": {"max_queued": 1}})
    with server.client(server.alice) as alice:
        first = alice.create("one")
        with pytest.raises(BusyError) as busy:
            alice.create("two")
        assert busy.value.code == "tenant_limit" and isinstance(busy.value, BackPressure)
        assert busy.value.retry_after_s == 12  # the api tier's 120 s SLO / 10

    class FreeSlotOn429(httpx.BaseTransport):
        """Answers the first refusal by cancelling the job that holds the slot, and tells the
        client to retry at once, so the retry can only succeed if the client makes it."""

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner, self.refused = inner, 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if response.status_code != 429:
                return response
            self.refused += 1
            with server.client(server.alice) as other:
                other.cancel(first.id)
            response.read()
            return httpx.Response(429, headers={"Retry-After": "0"}, content=response.content)

    transport = FreeSlotOn429(server.transport())
    with server.client(server.alice, transport=transport) as alice:
        second = alice.create("two", retry_on_busy=True)
    assert second.state == "queued" and transport.refused == 1


def test_wait_follows_events_to_success_then_download(
    server: Server,
    alice: LumaClient,
    wire: AppTransport,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gen = alice.create("a fox", frames=4)
    wire.sent.clear()

    def work() -> None:
        lease = server.lease(gen.id)
        for step in (1, 2, 3):
            server.step(lease, step, 3)
        server.finish(lease)

    join = in_thread(work)
    done = alice.wait(gen.id, timeout_s=15, progress=True)
    join()
    assert done.state == "succeeded" and done.done and done.error is None
    assert done.result_urls == {"video": f"/v1/generations/{gen.id}/content?variant=video"}
    assert wire.sent == [f"GET /v1/generations/{gen.id}/events"]  # the stream alone sufficed
    assert f"{gen.id} succeeded" in capsys.readouterr().err  # the progress line

    target = tmp_path / "out" / "fox.mp4"
    assert alice.download(gen.id, target) == target
    assert target.read_bytes() == VIDEO
    assert alice.download(gen.id, tmp_path / "out").name == f"{gen.id}.mp4"  # a folder
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, f"{gen.id}.mp4"])
    with pytest.raises(NotFoundError) as absent:
        alice.download(gen.id, tmp_path / "thumb.png", variant="thumbnail")
    assert absent.value.code == "not_found" and not (tmp_path / "thumb.png").exists()


def test_events_yield_increasing_steps_then_the_final_state(
    server: Server, alice: LumaClient
) -> None:
    gen = alice.create("a fox")
    seen: queue.Queue[int] = queue.Queue()

    def work() -> None:
        lease = server.lease(gen.id)
        for step in (1, 2, 3):
            server.step(lease, step, 3)
            assert seen.get(timeout=10) == step  # the stream showed it before the next one
        server.finish(lease)

    join = in_thread(work)
    events = []
    for event, data in alice.events(gen.id):
        events.append((event, data))
        if event == "progress" and data["step"]:
            seen.put(data["step"])
    join()
    steps = [data["step"] for event, data in events if event == "progress"]
    assert steps[:3] == [1, 2, 3] and steps == sorted(steps)
    states = [data["state"] for event, data in events if event == "state"]
    assert "running" in states and states[-1] == "succeeded"
    assert events[-1][0] == "done" and events[-1][1]["state"] == "succeeded"


@pytest.mark.parametrize("drop", ["error", "empty"])
def test_wait_polls_when_the_event_stream_drops(server: Server, drop: str) -> None:
    class NoEvents(httpx.BaseTransport):
        """Breaks the event stream: a connection error, or a stream that ends at once."""

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner, self.dropped = inner, 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if not request.url.path.endswith("/events"):
                return self.inner.handle_request(request)
            self.dropped += 1
            if drop == "error":
                raise httpx.RemoteProtocolError("peer closed the stream", request=request)
            return httpx.Response(200, headers={"Content-Type": "text/event-stream"})

    transport = NoEvents(server.transport())
    with server.client(server.alice, transport=transport, poll_s=0.01) as alice:
        gen = alice.create("a fox")
        with pytest.raises(TimeoutError, match="still queued"):
            alice.wait(gen.id, timeout_s=0.05, progress=False)
        join = in_thread(lambda: server.finish(server.lease(gen.id)))
        done = alice.wait(gen.id, timeout_s=15, progress=False)
        join()
    assert done.state == "succeeded" and transport.dropped == 2  # one try per wait, then polls


def test_async_client_round_trip(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=server.app)
        async with AsyncLumaClient(URL, server.alice, transport=transport) as alice:
            gen = await alice.create("a fox", frames=4, seed=7)
            assert (await alice.get(gen.id)).raw["request"]["seed"] == 7
            loop = asyncio.get_running_loop()
            lease = await loop.run_in_executor(None, server.lease, gen.id)
            work = loop.run_in_executor(
                None, lambda: [server.step(lease, 1, 2), server.finish(lease)]
            )
            done = await alice.wait(gen.id, timeout_s=15, progress=False)
            await work
            assert done.state == "succeeded"
            assert [g.id async for g in alice.list(limit=1)] == [gen.id]
            events = [event async for event, _ in alice.events(gen.id)]
            assert events[0] == "state" and events[-1] == "done"
            path = await alice.download(gen.id, tmp_path / "a.mp4")
            assert path.read_bytes() == VIDEO
            async with AsyncLumaClient(URL, server.bob, transport=transport) as bob:
                with pytest.raises(ApiError) as err:
                    await bob.get(gen.id)
            assert err.value.status == 404 and err.value.code == "not_found"
            await alice.delete(gen.id)

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < 20


def test_repr_and_from_env_keep_the_key_secret(server: Server) -> None:
    client = LumaClient.from_env(
        {"LUMA_RAY_URL": "http://luma.example:8000/", "LUMA_RAY_API_KEY": server.alice}
    )
    secret = server.alice.rsplit("_", 1)[1]
    assert secret not in repr(client) and server.alice[:15] in repr(client)
    assert client.base_url == "http://luma.example:8000"
    assert "api_key=None" in repr(LumaClient.from_env({}))
    assert LumaClient.from_env({}).base_url == "http://127.0.0.1:8000"
    client.close()


def test_sse_parser_handles_comments_multiline_data_and_plain_text() -> None:
    parser = SseParser()
    lines = [": keep-alive", "event: progress", 'data: {"step":', "data: 2}", "", "data: hi", ""]
    out = [item for line in lines if (item := parser.feed(line)) is not None]
    assert out == [("progress", {"step": 2}), ("message", {"data": "hi"})]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("12", 12.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Tue, 14 Nov 2023 22:13:32 GMT", 12.0),  # 12 s after NOW
        ("Tue, 14 Nov 2023 22:13:32 -0000", 12.0),  # no zone: read as UTC
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-3", None),
        ("1.5", None),  # delay-seconds are whole digits
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    now_s = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after(value, now_s) == expected
