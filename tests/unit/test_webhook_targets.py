"""The SSRF guard on IPv6 forms that carry an IPv4 address inside them: each is refused when
the embedded address is not public, both as a literal callback URL (request time) and as a
hostname's DNS answer (send time, a fake resolver and httpx.MockTransport: no network)."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from luma_ray.errors import InvalidRequest
from luma_ray.notify.events import WebhookEvent
from luma_ray.notify.sender import WebhookSender
from luma_ray.notify.targets import is_public, validate_callback_url

SECRET = b"whsec_test_targets"

# IPv6 addresses that lead to a loopback, private, link-local or unassigned IPv4 host.
REFUSED = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated): ::/96
    "::10.0.0.1",
    "::8.8.8.8",  # ::/96 is refused whole: no host is reached through it any more
    "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
    "64:ff9b::127.0.0.1",  # well-known NAT64 prefix, private inside
    "64:ff9b::a9fe:a9fe",  # ... the cloud metadata address
    "64:ff9b:1::8.8.8.8",  # local-use NAT64 (RFC 8215): a private translator, refused whole
    "64:ff9b:1:ffff::a00:1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
    "2002:0:0::1",  # 6to4 of 0.0.0.0
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (2001::/32), refused whole
    "2001:0:808:808::1",
]
# The same families, embedding a public address, and plain public IPv6.
ACCEPTED = [
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
    "2606:4700::1111",
]


@pytest.mark.parametrize("address", REFUSED)
def test_ipv6_forms_of_private_ipv4_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ACCEPTED)
def test_ipv6_forms_of_public_ipv4_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", REFUSED)
def test_literal_callback_url_is_refused_at_request_time(address: str) -> None:
    with pytest.raises(InvalidRequest, match="private"):
        validate_callback_url(f"https://[{address}]:8443/hook")


@pytest.mark.parametrize("address", ACCEPTED)
def test_literal_public_callback_url_is_accepted(address: str) -> None:
    url = f"https://[{address}]/hook"
    assert validate_callback_url(url) == url


def send_once(answer: str) -> tuple[list[httpx.Request], dict[str, int]]:
    """Send one event to a hostname whose DNS answer is ``answer``; what went out, and stats."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    sender = WebhookSender(
        SECRET,
        transport=httpx.MockTransport(record),
        resolver=lambda host, port: [answer],
    )
    try:
        sender.enqueue(
            WebhookEvent("evt_1", "https://hooks.example.com/x", "gen_1", "queued", {}, 1.0)
        )
        assert sender.flush(5.0)
        return sent, sender.stats
    finally:
        sender.close(timeout_s=1.0)


@pytest.mark.parametrize("address", REFUSED)
def test_dns_answer_in_such_a_form_is_refused_at_send_time(address: str) -> None:
    sent, stats = send_once(address)
    assert sent == []
    assert stats["dropped"] == 1 and stats["delivered"] == 0


@pytest.mark.parametrize("address", ACCEPTED)
def test_dns_answer_with_a_public_embedded_address_is_sent_to(address: str) -> None:
    sent, stats = send_once(address)
    (request,) = sent
    assert ipaddress.ip_address(request.url.host) == ipaddress.ip_address(address)
    assert request.headers["Host"] == "hooks.example.com"
    assert stats["delivered"] == 1
