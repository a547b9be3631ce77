"""Python clients: ``LumaClient``/``AsyncLumaClient`` over HTTP (no Ray needed), and the
Ray-native ``connect()`` for notebooks and scripts on the cluster.

Names load lazily, so importing the HTTP client never imports Ray.
"""

from __future__ import annotations

from typing import Any

_HTTP = ("LumaClient", "AsyncLumaClient", "Generation", "GenerationError", "Progress", "ApiError")
_RAY = ("Client", "connect")

__all__ = [*_HTTP, *_RAY]


def __getattr__(name: str) -> Any:
    if name == "AsyncLumaClient":
        from luma_ray.client.http_async import AsyncLumaClient

        return AsyncLumaClient
    if name in _HTTP:
        from luma_ray.client import http

        return getattr(http, name)
    if name in _RAY:
        from luma_ray.client import ray_client

        return getattr(ray_client, name)
    raise AttributeError(f"module 'luma_ray.client' has no attribute {name!r}")
