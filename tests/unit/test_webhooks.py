"""Webhooks (luma_ray/notify/): signing, the retry policy, the SSRF guard, and delivery to a
real HTTP server on 127.0.0.1. Time is a fake clock whose ``sleep`` records and advances.
(Fairness between tenants, attempt deadlines and long outages: test_webhook_delivery.py.)"""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from luma_ray.config import WebhookConfig
from luma_ray.errors import InvalidRequest
from luma_ray.notify.events import WebhookEvent, event_body
from luma_ray.notify.retries import Outcome, RetryPolicy
from luma_ray.notify.sender import WebhookSender
from luma_ray.notify.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    deployment_secret,
    sign_headers,
    tenant_secret,
    verify,
)
from luma_ray.notify.targets import validate_callback_url

SECRET = b"whsec_test_0123456789"
T0 = 1_700_000_000.0
FLUSH_S = 5.0


# --- sign / verify (Standard Webhooks) ----------------------------------------------------

TENANT_SECRET = tenant_secret(SECRET, "acme")


def _signed(body: bytes = b'{"id":"evt_1"}', stamp: float = T0) -> dict[str, str]:
    return sign_headers(TENANT_SECRET, "evt_1", body, int(stamp))


def test_sign_verify_round_trip() -> None:
    body = b'{"id":"evt_1"}'
    headers = _signed(body)
    assert headers[ID_HEADER] == "evt_1" and headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    assert verify(TENANT_SECRET, body, headers, now_s=T0 + 10)
    upper = {k.upper(): v for k, v in headers.items()}  # header names are case-insensitive
    assert verify(TENANT_SECRET, body, upper, now_s=T0 + 10)


def test_the_signature_is_the_standard_one() -> None:
    """v1,base64(HMAC-SHA256(base64decode(secret after whsec_), id.timestamp.body))."""
    import base64
    import hashlib
    import hmac as hmac_

    body = b'{"id":"evt_1"}'
    key = base64.b64decode(TENANT_SECRET.removeprefix("whsec_"))
    digest = hmac_.new(key, b"evt_1.1700000000." + body, hashlib.sha256).digest()
    assert _signed(body)[SIGNATURE_HEADER] == "v1," + base64.b64encode(digest).decode()


def test_the_standardwebhooks_package_and_the_openai_sdk_verify_it() -> None:
    import time

    import openai
    import standardwebhooks

    body = b'{"created_at":1.0,"data":{"id":"gen_a"},"id":"evt_1","type":"generation.queued"}'
    now = time.time()
    headers = sign_headers(TENANT_SECRET, "evt_1", body, int(now))
    assert standardwebhooks.Webhook(TENANT_SECRET).verify(body, headers)["id"] == "evt_1"
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    client.webhooks.unwrap(body, headers, secret=TENANT_SECRET)  # raises when it does not match
    forged = {
        **headers,
        SIGNATURE_HEADER: sign_headers(tenant_secret(SECRET, "eve"), "evt_1", body, int(now))[
            SIGNATURE_HEADER
        ],
    }
    replayed = sign_headers(TENANT_SECRET, "evt_1", body, int(now) - 301)
    for bad in (forged, replayed):
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(TENANT_SECRET).verify(body, bad)
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.unwrap(body, bad, secret=TENANT_SECRET)
        assert not verify(TENANT_SECRET, body, bad, now_s=now)


@pytest.mark.parametrize(
    ("body", "secret", "now_s"),
    [
        (b'{"id":"evt_2"}', TENANT_SECRET, T0),  # tampered body
        (b'{"id":"evt_1"}', tenant_secret(SECRET, "zeta"), T0),  # another tenant's secret
        (b'{"id":"evt_1"}', TENANT_SECRET, T0 + 301),  # too old
        (b'{"id":"evt_1"}', TENANT_SECRET, T0 - 301),  # from the future
    ],
)
def test_verify_refuses(body: bytes, secret: str, now_s: float) -> None:
    assert not verify(secret, body, _signed(), now_s=now_s)


def test_verify_tolerance_is_adjustable() -> None:
    headers = _signed(b"x")
    assert verify(TENANT_SECRET, b"x", headers, now_s=T0 + 900, tolerance_s=1000)
    assert not verify(TENANT_SECRET, b"x", headers, now_s=T0 + 11, tolerance_s=10)


def test_verify_accepts_any_of_several_signatures() -> None:
    headers = _signed(b"x")
    rotated = {**headers, SIGNATURE_HEADER: f"v1,{'A' * 44} {headers[SIGNATURE_HEADER]}"}
    assert verify(TENANT_SECRET, b"x", rotated, now_s=T0)


@pytest.mark.parametrize(
    "change",
    [
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: "garbage"},
        {TIMESTAMP_HEADER: ""},
        {TIMESTAMP_HEADER: "abc"},
        {TIMESTAMP_HEADER: "-5"},
        {ID_HEADER: ""},
        {ID_HEADER: "evt_2"},  # the id is signed too
        {SIGNATURE_HEADER: "v1,é"},  # non-ASCII must not raise from compare_digest
        {SIGNATURE_HEADER: "v1,x " * 500},  # oversized
    ],
)
def test_verify_malformed_headers_are_false_not_an_error(change: dict[str, str]) -> None:
    assert verify(TENANT_SECRET, b"x", {**_signed(b"x"), **change}, now_s=T0) is False


def test_verify_truncated_signature_of_the_right_body_fails() -> None:
    headers = _signed(b"x")
    cut = {**headers, SIGNATURE_HEADER: headers[SIGNATURE_HEADER][:-2]}
    assert not verify(TENANT_SECRET, b"x", cut, now_s=T0)


# --- RetryPolicy -----------------------------------------------------------------------------


def test_policy_waits_the_scheduled_time_then_the_event_expires() -> None:
    policy = RetryPolicy((5.0, 300.0, 1800.0))
    failed = Outcome("retry", "HTTP 503")
    assert policy.max_attempts == 4
    assert [policy.delay_s(failed, n) for n in (1, 2, 3)] == [5.0, 300.0, 1800.0]
    assert [policy.retries(failed, n) for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert not policy.retries(Outcome("drop", "HTTP 400"), 1)
    assert not RetryPolicy(()).retries(failed, 1)  # an empty schedule: one attempt


@pytest.mark.parametrize(
    ("retry_after_s", "expected_s"),
    [(None, 5.0), (1.0, 5.0), (60.0, 60.0), (10**6, 1800.0)],
)
def test_retry_after_lengthens_a_wait_up_to_the_longest_scheduled(
    retry_after_s: float | None, expected_s: float
) -> None:
    policy = RetryPolicy((5.0, 300.0, 1800.0))
    assert policy.delay_s(Outcome("retry", "HTTP 429", retry_after_s), 1) == expected_s


def test_policy_refuses_a_negative_wait() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy((5.0, -1.0))


# --- validate_callback_url -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://example.com:8080/a/b?token=x",
        "https://8.8.8.8/hook",
        "https://[2606:4700::1111]/hook",
    ],
)
def test_public_urls_are_accepted(url: str) -> None:
    assert validate_callback_url(url) == url


# (url, words the message must contain so the caller knows what to fix)
REFUSED_ALWAYS = [
    ("ftp://example.com/hook", "http"),
    ("javascript:alert(1)", "http"),
    ("http://user:pw@h/", "user:password"),
    ("http://user@example.com/", "user:password"),
    ("https:///nohost", "host"),
    ("http://example.com:99999/", "port"),
    ("http://exa mple.com/", "spaces"),
    ("https://example.com/" + "a" * 2100, "2048"),
]
REFUSED_UNLESS_PRIVATE = [
    ("http://127.0.0.1/", "private"),
    ("http://10.0.0.1/", "private"),
    ("http://192.168.1.20:8080/x", "private"),
    ("http://169.254.169.254/latest/meta-data", "private"),  # cloud metadata
    ("http://0.0.0.0/", "private"),
    ("http://[::1]/", "private"),
    ("http://[fe80::1]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "private"),
    ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 of 10.0.0.1
    ("http://[2002:7f00:1::]/", "private"),  # 6to4 of 127.0.0.1
    ("http://127.1/", "private"),  # inet_aton shorthand
    ("http://0x7f000001/", "private"),
    ("http://2130706433/", "private"),
    ("http://localhost/", "localhost"),
    ("http://LOCALHOST./hook", "localhost"),
    ("http://api.localhost/", "localhost"),
]


@pytest.mark.parametrize(("url", "hint"), REFUSED_ALWAYS + REFUSED_UNLESS_PRIVATE)
def test_bad_urls_are_refused_with_a_fix(url: str, hint: str) -> None:
    with pytest.raises(InvalidRequest, match=hint):
        validate_callback_url(url)


@pytest.mark.parametrize(("url", "hint"), REFUSED_ALWAYS)
def test_allow_private_does_not_relax_syntax(url: str, hint: str) -> None:
    with pytest.raises(InvalidRequest, match=hint):
        validate_callback_url(url, allow_private=True)


@pytest.mark.parametrize("url", [url for url, _ in REFUSED_UNLESS_PRIVATE])
def test_allow_private_accepts_private_hosts(url: str) -> None:
    assert validate_callback_url(url, allow_private=True) == url


# --- delivery against a real server ------------------------------------------------------------


class FakeClock:
    """``time`` for the sender; ``sleep`` records the delay and moves time, without waiting."""

    def __init__(self, start_s: float = T0) -> None:
        self.now_s = start_s
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return str(json.loads(self.body)["id"])


Responder = Callable[[Hit, int], tuple[int, dict[str, str]]]  # (hit, index) -> status, headers


@dataclass
class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every POST and answers via ``respond``."""

    respond: Responder
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=hunter2"

    def event_ids(self) -> list[str]:
        return [hit.event_id for hit in self.hits]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected in these tests


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(respond: Responder) -> Receiver:
        receiver = Receiver(respond)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hit = Hit({k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.lock:
                    receiver.hits.append(hit)
                    index = len(receiver.hits) - 1
                status, headers = receiver.respond(hit, index)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        receiver.server = server
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def script(*statuses: int) -> Responder:
    """Answer the n-th request with ``statuses[n]``, the last one repeating."""
    return lambda hit, index: (statuses[min(index, len(statuses) - 1)], {})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


SHORT_SCHEDULE_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def settings(**overrides: Any) -> WebhookConfig:
    """The tests' webhook settings: retries after 0.5, 1, 2, 4 and 8 s, attempts of 2 s."""
    fields: dict[str, Any] = {"retry_schedule_s": SHORT_SCHEDULE_S, "attempt_timeout_s": 2.0}
    return WebhookConfig(**{**fields, **overrides})


SETTINGS = set(WebhookConfig.model_fields)


@pytest.fixture
def make_sender(clock: FakeClock) -> Iterator[Callable[..., WebhookSender]]:
    """``make_sender(**kw)``: WebhookConfig fields among ``kw`` go to its settings."""
    senders: list[WebhookSender] = []

    def make(**overrides: Any) -> WebhookSender:
        options: dict[str, Any] = {"allow_private": True, "sleep": clock.sleep, "clock": clock.time}
        options.update({k: v for k, v in overrides.items() if k not in SETTINGS})
        config = settings(**{k: v for k, v in overrides.items() if k in SETTINGS})
        sender = WebhookSender(SECRET, config, **options)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.close(timeout_s=1.0)


def make_event(
    url: str, job_id: str = "gen_a", n: int = 1, state: str = "succeeded"
) -> WebhookEvent:
    return WebhookEvent(
        event_id=f"evt_{job_id}_{n}",
        url=url,
        job_id=job_id,
        state=state,
        payload={"id": job_id, "state": state, "n": n},
        created_at_s=T0 + n,
    )


def test_event_body_is_canonical_json() -> None:
    event = make_event("https://example.com/hook", state="queued")
    assert event_body(event) == (
        b'{"created_at":1700000001.0,"data":{"id":"gen_a","n":1,"state":"queued"},'
        b'"id":"evt_gen_a_1","type":"generation.queued"}'
    )


def test_two_503s_then_200_delivers_the_same_signed_event_three_times(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
) -> None:
    receiver = serve(script(503, 503, 200))
    sender = make_sender()
    event = make_event(receiver.url)
    sender.enqueue(event)
    assert sender.flush(FLUSH_S)

    assert len(receiver.hits) == 3
    for hit in receiver.hits:
        assert hit.headers[ID_HEADER] == event.event_id
        assert hit.body == event_body(event)
        assert verify(deployment_secret(SECRET), hit.body, hit.headers, now_s=clock.now_s)
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["user-agent"] == "luma-ray-webhooks/1"
    assert clock.slept == [0.5, 1.0]
    assert sender.stats == {"delivered": 1, "retried": 2, "dropped": 0}


def test_400_is_not_retried_and_the_event_is_dropped(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = serve(script(400))
    sender = make_sender()
    with caplog.at_level(logging.WARNING, logger="luma_ray.notify.sender"):
        sender.enqueue(make_event(receiver.url))
        assert sender.flush(FLUSH_S)

    assert len(receiver.hits) == 1
    assert clock.slept == []
    assert sender.stats == {"delivered": 0, "retried": 0, "dropped": 1}
    assert "gen_a" in caplog.text and "evt_gen_a_1" in caplog.text and "HTTP 400" in caplog.text
    assert "hunter2" not in caplog.text and "/hook" not in caplog.text
    assert SECRET.decode() not in caplog.text


class CountingTransport(httpx.BaseTransport):
    """The real network transport, counting the requests that go through it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_closed_port_is_tried_max_attempts_times_then_dropped(
    make_sender: Callable[..., WebhookSender], clock: FakeClock
) -> None:
    transport = CountingTransport()
    sender = make_sender(retry_schedule_s=(0.5, 1.0, 2.0), transport=transport)
    sender.enqueue(make_event(f"http://127.0.0.1:{closed_port()}/hook"))
    assert sender.flush(FLUSH_S)

    assert len(transport.requests) == 4
    assert clock.slept == [0.5, 1.0, 2.0]
    assert sender.stats == {"delivered": 0, "retried": 3, "dropped": 1}


def test_order_per_job_and_a_backing_off_job_does_not_hold_up_others(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
) -> None:
    gate = threading.Event()
    failed_once: set[str] = set()

    def respond(hit: Hit, index: int) -> tuple[int, dict[str, str]]:
        if hit.event_id == "evt_a_1" and not failed_once:  # answers 503 once the gate opens
            failed_once.add(hit.event_id)
            assert gate.wait(FLUSH_S)
            return 503, {}
        return 200, {}

    receiver = serve(respond)
    sender = make_sender()
    sender.enqueue(make_event(receiver.url, "a", 1))
    sender.enqueue(make_event(receiver.url, "a", 2))
    sender.enqueue(make_event(receiver.url, "b", 1))
    sender.enqueue(make_event(receiver.url, "a", 3))
    # b/1 goes while a/1 is held in flight; a/2 waits behind a/1
    wait_until(lambda: sorted(receiver.event_ids()) == ["evt_a_1", "evt_b_1"])
    gate.set()
    assert sender.flush(FLUSH_S)

    ids = receiver.event_ids()
    assert [x for x in ids if x.startswith("evt_a_")] == [
        "evt_a_1",
        "evt_a_1",
        "evt_a_2",
        "evt_a_3",
    ]
    assert clock.slept == [0.5]
    assert sender.stats == {"delivered": 4, "retried": 1, "dropped": 0}


def test_many_jobs_from_many_threads_keep_their_order(
    serve: Callable[[Responder], Receiver], make_sender: Callable[..., WebhookSender]
) -> None:
    receiver = serve(script(200))
    sender = make_sender()

    def produce(job: str) -> None:
        for n in range(10):
            sender.enqueue(make_event(receiver.url, job, n))

    threads = [threading.Thread(target=produce, args=(f"job{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sender.flush(FLUSH_S)

    ids = receiver.event_ids()
    assert len(ids) == 40
    for i in range(4):
        assert [x for x in ids if x.startswith(f"evt_job{i}_")] == [
            f"evt_job{i}_{n}" for n in range(10)
        ]


@pytest.mark.parametrize(
    ("retry_after", "expected_s"),
    [("7", 7.0), ("1000", 8.0), ("soon", 0.5), ("0", 0.5)],
)
def test_retry_after_seconds_is_honoured_and_capped(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
    retry_after: str,
    expected_s: float,
) -> None:
    """Retry-After may lengthen the scheduled wait (0.5 s), at most to its longest (8 s)."""
    receiver = serve(
        lambda hit, index: (429, {"Retry-After": retry_after}) if index == 0 else (200, {})
    )
    sender = make_sender()
    sender.enqueue(make_event(receiver.url))
    assert sender.flush(FLUSH_S)
    assert clock.slept == [expected_s]
    assert len(receiver.hits) == 2


def test_retry_after_http_date(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
) -> None:
    when = email.utils.formatdate(T0 + 12, usegmt=True)
    receiver = serve(lambda hit, index: (503, {"Retry-After": when}) if index == 0 else (204, {}))
    sender = make_sender(retry_schedule_s=(0.5, 60.0))
    sender.enqueue(make_event(receiver.url))
    assert sender.flush(FLUSH_S)
    assert clock.slept == [pytest.approx(12.0)]


def test_slow_endpoint_times_out_and_is_retried(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
) -> None:
    release = threading.Event()

    def respond(hit: Hit, index: int) -> tuple[int, dict[str, str]]:
        if index == 0:
            release.wait(FLUSH_S)  # hangs past the sender's timeout
        return 200, {}

    receiver = serve(respond)
    sender = make_sender(attempt_timeout_s=0.5)
    try:
        sender.enqueue(make_event(receiver.url))
        assert sender.flush(FLUSH_S)
    finally:
        release.set()
    assert len(receiver.hits) == 2
    assert clock.slept == [0.5]
    assert sender.stats == {"delivered": 1, "retried": 1, "dropped": 0}


# --- SSRF guard at send time (no network: httpx.MockTransport, a fake resolver) ---------------


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


@pytest.mark.parametrize(
    "addresses", [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["fe80::1"], []]
)
def test_hostname_resolving_to_private_address_is_dropped(
    make_sender: Callable[..., WebhookSender], addresses: list[str]
) -> None:
    recorder = Recorder()
    sender = make_sender(
        allow_private=False,
        transport=httpx.MockTransport(recorder),
        resolver=lambda host, port: addresses,
    )
    sender.enqueue(make_event("https://hooks.example.com/x"))
    assert sender.flush(FLUSH_S)
    assert recorder.requests == []
    assert sender.stats == {"delivered": 0, "retried": 0, "dropped": 1}


@pytest.mark.parametrize(
    ("url", "address", "port", "host_header", "sni"),
    [
        (
            "https://hooks.example.com/x",
            "93.184.216.34",
            443,
            "hooks.example.com",
            "hooks.example.com",
        ),
        ("http://hooks.example.com:8080/x", "2606:4700::1", 8080, "hooks.example.com:8080", None),
    ],
)
def test_request_goes_to_the_checked_address(
    make_sender: Callable[..., WebhookSender],
    url: str,
    address: str,
    port: int,
    host_header: str,
    sni: str | None,
) -> None:
    recorder = Recorder()
    looked_up: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return [address]

    sender = make_sender(
        allow_private=False, transport=httpx.MockTransport(recorder), resolver=resolver
    )
    sender.enqueue(make_event(url))
    assert sender.flush(FLUSH_S)

    (request,) = recorder.requests
    assert request.url.host == address
    assert request.headers["Host"] == host_header
    assert request.extensions.get("sni_hostname") == sni
    assert looked_up == [("hooks.example.com", port)]
    assert sender.stats["delivered"] == 1


def test_resolver_failure_is_retried(
    make_sender: Callable[..., WebhookSender], clock: FakeClock
) -> None:
    recorder = Recorder()
    answers: list[list[str] | None] = [None, ["93.184.216.34"]]

    def resolver(host: str, port: int) -> list[str]:
        answer = answers.pop(0)
        if answer is None:
            raise socket.gaierror("temporary failure in name resolution")
        return answer

    sender = make_sender(
        allow_private=False, transport=httpx.MockTransport(recorder), resolver=resolver
    )
    sender.enqueue(make_event("https://hooks.example.com/x"))
    assert sender.flush(FLUSH_S)
    assert len(recorder.requests) == 1
    assert clock.slept == [0.5]


# --- enqueue never raises ----------------------------------------------------------------------


def test_unsendable_events_are_dropped_without_raising(
    make_sender: Callable[..., WebhookSender],
) -> None:
    recorder = Recorder()
    sender = make_sender(allow_private=False, transport=httpx.MockTransport(recorder))
    sender.enqueue(make_event("ftp://example.com/x"))
    sender.enqueue(make_event("http://127.0.0.1/x"))
    sender.enqueue(make_event("http://example.com:bad/x"))
    unserialisable = make_event("https://example.com/x")
    sender.enqueue(
        WebhookEvent("evt_x", unserialisable.url, "gen_x", "failed", {"obj": object()}, T0)
    )
    assert sender.flush(FLUSH_S)
    assert recorder.requests == []
    assert sender.stats == {"delivered": 0, "retried": 0, "dropped": 4}


def test_pending_limit_drops_instead_of_growing(make_sender: Callable[..., WebhookSender]) -> None:
    gate = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        gate.wait(FLUSH_S)
        return httpx.Response(200)

    sender = make_sender(transport=httpx.MockTransport(handler), max_pending_per_tenant=2)
    for n in range(4):
        sender.enqueue(make_event("https://example.com/x", "gen_a", n))
    gate.set()
    assert sender.flush(FLUSH_S)
    assert sender.stats == {"delivered": 2, "retried": 0, "dropped": 2}


def wait_until(predicate: Callable[[], bool], timeout_s: float = FLUSH_S) -> None:
    """Poll ``predicate`` (no fixed sleep decides the outcome); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        threading.Event().wait(0.01)


def test_close_cuts_a_long_backoff_short_and_drops_what_is_left(
    serve: Callable[[Responder], Receiver],
) -> None:
    receiver = serve(script(503))
    sender = WebhookSender(SECRET, settings(retry_schedule_s=(30.0,)), allow_private=True)
    sender.enqueue(make_event(receiver.url))
    wait_until(lambda: sender.stats["retried"] == 1)  # now backing off for 30 s

    started_s = time.monotonic()
    sender.close(timeout_s=0.2)
    assert time.monotonic() - started_s < 2.0  # did not sit out the 30 s backoff
    assert len(receiver.hits) == 1
    assert sender.stats == {"delivered": 0, "retried": 1, "dropped": 1}
    sender.enqueue(make_event(receiver.url, n=2))  # after close: dropped, no exception
    assert sender.stats["dropped"] == 2


# --- the outbox: undelivered events outlive the sender -----------------------------------


def test_undelivered_events_are_sent_by_the_next_sender(
    serve: Callable[[Responder], Receiver], tmp_path: Any
) -> None:
    """A receiver that is down (503) while the first sender runs; the sender stops (a restart)
    with three events undelivered. A new sender on the same outbox sends them, in order per
    job, once the receiver is back; the outbox is then empty."""
    from luma_ray.notify.outbox import WebhookOutbox

    down = {"flag": True}
    receiver = serve(lambda hit, index: (503 if down["flag"] else 200, {}))
    events = [
        make_event(receiver.url, "gen_a", 1),
        make_event(receiver.url, "gen_b", 1),
        make_event(receiver.url, "gen_a", 2),
    ]
    first = WebhookSender(  # real clock: each job's first event fails, and waits 30 s
        SECRET,
        settings(retry_schedule_s=(30.0,)),
        allow_private=True,
        outbox=WebhookOutbox(tmp_path / "o.db"),
    )
    for event in events:
        first.enqueue(event)
    wait_until(lambda: len(receiver.hits) >= 2)  # each job's first event tried once
    first.close(timeout_s=0.1)
    assert first.stats["delivered"] == 0 and first.stats["dropped"] == 0

    outbox = WebhookOutbox(tmp_path / "o.db")
    kept = outbox.pending()
    assert [p.event.event_id for p in kept] == [e.event_id for e in events]
    assert [p.attempts for p in kept] == [1, 1, 0]  # the schedule's state is kept too
    down["flag"] = False
    tried = len(receiver.hits)
    later = FakeClock(time.time())  # the second run goes on where the first one stopped
    second = WebhookSender(
        SECRET,
        settings(retry_schedule_s=(30.0,)),
        allow_private=True,
        outbox=outbox,
        clock=later.time,
        sleep=later.sleep,
    )
    assert second.flush(FLUSH_S)
    second.close()
    assert second.stats == {"delivered": 3, "retried": 0, "dropped": 0}
    assert 25.0 < later.slept[0] <= 30.0  # the retry waited for its due time
    sent = receiver.event_ids()[tried:]
    assert sorted(sent) == sorted(e.event_id for e in events)
    assert sent.index("evt_gen_a_1") < sent.index("evt_gen_a_2")  # order per job kept
    assert outbox.pending() == []


def test_delivered_and_dropped_events_leave_the_outbox(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    tmp_path: Any,
) -> None:
    from luma_ray.notify.outbox import WebhookOutbox

    ok, refused = serve(script(200)), serve(script(400))
    outbox = WebhookOutbox(tmp_path / "o.db")
    sender = make_sender(outbox=outbox)
    sender.enqueue(make_event(ok.url, "gen_a"))
    sender.enqueue(make_event(refused.url, "gen_b"))
    sender.enqueue(make_event("ftp://example.com/x", "gen_c"))  # unsendable: never kept
    assert sender.flush(FLUSH_S)
    assert sender.stats == {"delivered": 1, "retried": 0, "dropped": 2}
    assert outbox.pending() == []


def test_events_are_signed_with_their_tenants_secret(
    serve: Callable[[Responder], Receiver],
    make_sender: Callable[..., WebhookSender],
    clock: FakeClock,
) -> None:
    from dataclasses import replace

    receiver = serve(script(200))
    sender = make_sender()
    sender.enqueue(replace(make_event(receiver.url, "gen_a"), tenant="acme"))
    sender.enqueue(make_event(receiver.url, "gen_b"))  # no tenant: the master secret
    assert sender.flush(FLUSH_S)
    by_job = {json.loads(hit.body)["data"]["id"]: hit for hit in receiver.hits}
    acme, signed = tenant_secret(SECRET, "acme"), by_job["gen_a"].headers
    assert verify(acme, by_job["gen_a"].body, signed, now_s=clock.now_s)
    assert not verify(deployment_secret(SECRET), by_job["gen_a"].body, signed, clock.now_s)
    assert not verify(tenant_secret(SECRET, "zeta"), by_job["gen_a"].body, signed, clock.now_s)
    plain = by_job["gen_b"].headers
    assert verify(deployment_secret(SECRET), by_job["gen_b"].body, plain, now_s=clock.now_s)
