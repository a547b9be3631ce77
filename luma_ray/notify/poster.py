"""One delivery attempt: build the signed ``POST`` for an event, send it within the attempt's
deadline, and say what came of it (:class:`~luma_ray.notify.retries.Outcome`).

Used by the sender's delivery threads, each making one attempt at a time over the one shared
client. The deadline covers the whole attempt (connect, TLS, send, status line and headers: see
:mod:`luma_ray.notify.transport`), however the receiver paces its bytes. Unless
``allow_private``, the host is
resolved at send time and the request goes to the address that was checked (Host header and
TLS name stay the hostname), so DNS rebinding cannot slip in between check and connect.
Redirects are not followed, proxy variables are ignored and the response body is never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import httpx

from luma_ray.notify.events import WebhookEvent
from luma_ray.notify.retries import Outcome, classify, parse_retry_after
from luma_ray.notify.signing import sign_headers, signing_secret
from luma_ray.notify.targets import Resolver, is_public
from luma_ray.notify.transport import Deadline, DeadlineTransport

USER_AGENT = "luma-ray-webhooks/1"


class _Refused(Exception):
    """The host resolved to an address the SSRF guard refuses; the event is dropped."""


class WebhookPoster:
    """Sends single attempts over one HTTP client, from any thread; :meth:`close` when done.

    Without a ``transport`` (tests pass one) attempts go over a :class:`DeadlineTransport`,
    which ends each of them ``attempt_timeout_s`` after it began."""

    def __init__(
        self,
        secret: bytes,
        *,
        attempt_timeout_s: float,
        allow_private: bool,
        transport: httpx.BaseTransport | None,
        clock: Callable[[], float],
        resolver: Resolver,
    ) -> None:
        self._secret = secret
        self._allow_private = allow_private
        self._clock = clock
        self._resolver = resolver
        self._attempt_timeout_s = attempt_timeout_s
        self._deadline = Deadline()
        self._client = httpx.Client(
            transport=transport if transport is not None else DeadlineTransport(self._deadline),
            timeout=attempt_timeout_s,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    def post(self, event: WebhookEvent, body: bytes) -> Outcome:
        """Send ``body`` (the event's bytes) once; network failures become outcomes."""
        with self._deadline.within(self._attempt_timeout_s):
            try:
                request = self._build_request(event, body)
            except _Refused as exc:
                return Outcome("drop", str(exc))
            except OSError as exc:  # resolver failure, often temporary
                return Outcome("retry", f"resolve failed ({type(exc).__name__})")
            try:
                response = self._client.send(request, stream=True)  # headers only, no body
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                return Outcome("retry", type(exc).__name__)
            except httpx.HTTPError as exc:
                return Outcome("drop", type(exc).__name__)
        try:
            retry_after_s = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            return classify(response.status_code, retry_after_s)
        finally:
            response.close()

    def close(self) -> None:
        self._client.close()

    def _build_request(self, event: WebhookEvent, body: bytes) -> httpx.Request:
        url = httpx.URL(event.url)
        secret = signing_secret(self._secret, event.tenant)
        headers = {
            "Content-Type": "application/json",
            **sign_headers(secret, event.event_id, body, int(self._clock())),
        }
        extensions: dict[str, Any] = {}
        if not self._allow_private:
            host = url.raw_host.decode("ascii")
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses = [ipaddress.ip_address(a) for a in self._resolver(host, port)]
            if not addresses or not all(is_public(a) for a in addresses):
                raise _Refused("host resolves to a private or reserved address")
            headers["Host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                extensions["sni_hostname"] = host
            url = url.copy_with(host=str(addresses[0]))
        return self._client.build_request(
            "POST", url, content=body, headers=headers, extensions=extensions
        )
