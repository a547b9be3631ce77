"""Where a webhook may go: callback URL checks and the SSRF guard on addresses.

The HTTP layer calls :func:`validate_callback_url` when a request arrives (``InvalidRequest`` →
400) and the sender calls it again as it queues an event. Hostnames are looked up only at send
time, with a :data:`Resolver`, and every answer must pass :func:`is_public`. :func:`redact` is
all that logs may show of a callback URL (paths and query strings often carry tokens).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from luma_ray.errors import InvalidRequest

MAX_URL_CHARS = 2048

# Hosts that inet_aton reads as IPv4 although ipaddress does not: "127.1", "0x7f.1", "2130706433".
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits: the IPv4 address decides.
_EMBEDS_IPV4 = (
    ipaddress.ip_network("64:ff9b::/96"),  # well-known NAT64 (RFC 6052)
    ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 7915)
)
# IPv6 prefixes refused whole: they reach IPv4 hosts we cannot vet from here.
_NEVER_PUBLIC = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, RFC 4291), :: and ::1 too
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215): a private translator
    ipaddress.ip_network("2001::/32"),  # Teredo: a tunnel through an IPv4 relay
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses``: how the sender looks a host up at send time."""


def validate_callback_url(
    url: str, *, allow_private: bool = False, what: str = "callback_url"
) -> str:
    """Return ``url`` if it may receive webhooks; raise ``InvalidRequest`` saying what to fix.

    Only ``http``/``https`` with a host, no ``user:password@``, at most ``MAX_URL_CHARS``.
    Unless ``allow_private``, refuses ``localhost`` and literal loopback, private, link-local and
    reserved addresses (the SSRF guard). Hostnames are not resolved here: the sender resolves
    them before each attempt and refuses private answers then. ``what`` names the URL in
    messages (the ingress checks input URLs such as ``first_frame`` the same way).
    """
    if len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"{what} has {len(url)} characters; at most {MAX_URL_CHARS}")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidRequest(f"{what} must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRequest(f"{what} must start with http:// or https://")
    if "@" in parts.netloc:
        raise InvalidRequest(f"{what} must not contain user:password@; use a path token")
    if not parts.hostname:
        raise InvalidRequest(f"{what} needs a host, as in https://example.com/hook")
    try:
        _ = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise InvalidRequest(f"{what} is not a valid URL (check the host and port)") from None
    if not allow_private:
        host = parts.hostname.rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidRequest(f"{what} must not point at localhost; use a public host")
        address = _literal_ip(host)
        if address is not None and not is_public(address):
            raise InvalidRequest(
                f"{what} points at a private, loopback, link-local or reserved address; "
                "use a public host"
            )
    return url


def resolve_host(host: str, port: int) -> list[str]:
    """The default :data:`Resolver`: every address the system resolver returns for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(address: IPAddress) -> bool:
    """False for anything but a global unicast address, looking inside IPv6 forms of IPv4.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-translated, well-known NAT64 (``64:ff9b::/96``) and
    6to4 (``2002::/16``) addresses are as public as the IPv4 address inside them;
    IPv4-compatible (``::/96``), local-use NAT64 (``64:ff9b:1::/48``) and Teredo
    (``2001::/32``) addresses are never public.
    """
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NEVER_PUBLIC):
            return False
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and any(address in network for network in _EMBEDS_IPV4):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return inner is None or is_public(inner)
    return True


def redact(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what logs may show of a callback URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{port}" if port else "")


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
