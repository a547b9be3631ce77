"""Fetching a generation input from an http(s) URL, under the webhooks' address rules.

The ingress (``luma_ray.api.inputs``) calls :meth:`MediaFetcher.fetch` on a worker thread for
each input given as a URL. Unless private addresses are allowed explicitly
(``allow_private_inputs``), the URL is checked as a callback URL is (no ``localhost``, no literal
private address), its host is resolved and every answer must be public, and the request goes to
the address that was checked (Host header and TLS name stay the hostname), so DNS rebinding
cannot slip in between. Redirects are refused (the client gives the final URL), proxy variables
are ignored, and one deadline bounds the whole fetch: connect, TLS, headers and every byte of
the body, which is written to a file and cut off past ``max_bytes``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx

from luma_ray.errors import InvalidRequest, TooLarge
from luma_ray.notify.targets import Resolver, is_public, validate_callback_url
from luma_ray.notify.transport import Deadline, DeadlineTransport

USER_AGENT = "luma-ray-inputs/1"


class MediaFetcher:
    """Fetches input URLs into files; one per app (each fetch makes its own client)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver,
        timeout_s: float,
        max_bytes: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._transport = transport

    def fetch(self, url: str, field: str, into: Path) -> int:
        """Write the body at ``url`` into ``into``; its size. ``InvalidRequest`` naming
        ``field`` for a refused address, a redirect, an error status, a timeout or a network
        failure; ``TooLarge`` past ``max_bytes``."""
        validate_callback_url(url, allow_private=self.allow_private, what=field)
        deadline = Deadline()
        transport = self._transport or DeadlineTransport(deadline)
        with (
            httpx.Client(
                transport=transport,
                timeout=self.timeout_s,
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            ) as client,
            deadline.within(self.timeout_s),
        ):
            try:
                request = self._request(client, url, field)
                response = client.send(request, stream=True)
                try:
                    self._check_status(response, field)
                    return self._save(response, field, into)
                finally:
                    response.close()
            except httpx.TimeoutException:
                raise InvalidRequest(
                    f"{field}: fetching the URL took longer than {self.timeout_s:g} s; "
                    "upload the file with POST /v1/files instead"
                ) from None
            except httpx.HTTPError as exc:
                raise InvalidRequest(
                    f"{field}: the URL could not be fetched ({type(exc).__name__})"
                ) from None
            except OSError as exc:  # the resolver failed
                raise InvalidRequest(
                    f"{field}: the URL's host could not be resolved ({type(exc).__name__})"
                ) from None

    def _request(self, client: httpx.Client, url: str, field: str) -> httpx.Request:
        target = httpx.URL(url)
        headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        if not self.allow_private:
            host = target.raw_host.decode("ascii")
            port = target.port or (443 if target.scheme == "https" else 80)
            addresses = [ipaddress.ip_address(a) for a in self.resolver(host, port)]
            if not addresses or not all(is_public(a) for a in addresses):
                raise InvalidRequest(
                    f"{field}: the URL's host resolves to a private, loopback or reserved "
                    "address; use a public host or upload the file with POST /v1/files"
                )
            headers["Host"] = target.netloc.decode("ascii")
            if target.scheme == "https":
                extensions["sni_hostname"] = host
            target = target.copy_with(host=str(addresses[0]))
        return client.build_request("GET", target, headers=headers, extensions=extensions)

    def _check_status(self, response: httpx.Response, field: str) -> None:
        if response.is_redirect:
            raise InvalidRequest(
                f"{field}: the URL redirects (HTTP {response.status_code}); "
                "redirects are not followed, give the final URL"
            )
        if not response.is_success:
            raise InvalidRequest(
                f"{field}: fetching the URL answered HTTP {response.status_code}; "
                "give a URL that serves the file"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(field)

    def _save(self, response: httpx.Response, field: str, into: Path) -> int:
        size = 0
        with open(into, "wb") as out:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large(field)
                out.write(chunk)
        return size

    def _too_large(self, field: str) -> TooLarge:
        return TooLarge(f"{field}: the file at the URL is over {self.max_bytes} bytes")
