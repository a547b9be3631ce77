"""What a caller may ask for: its tier's limits (``/v1/limits``) and the models
(``/v1/models``) with their request limits and active versions."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request

from luma_ray.api.context import Caller, ports
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.protocol import DescribeLimits

log = logging.getLogger(__name__)


def add_routes(app: FastAPI) -> None:
    @app.get("/v1/limits")
    async def limits(request: Request, who: Caller) -> dict[str, Any]:
        described = await ports(request).scheduler.call(DescribeLimits())
        caps = described.tenant_limits.get(who.tier)
        return {
            "tenant": who.tenant,
            "tier": asdict(described.tier(who.tier)),
            "tenant_limits": caps.model_dump() if caps is not None else None,
            "models": {name: asdict(m) for name, m in described.models.items()},
        }

    @app.get("/v1/models")
    async def models(request: Request, who: Caller) -> dict[str, Any]:
        """Models with their request limits and active version (pin one as ``name@version``)."""
        described = await ports(request).scheduler.call(DescribeLimits())
        names = sorted(described.models)
        versions = await asyncio.to_thread(_active_versions, ports(request).repository, names)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "limits": asdict(described.models[name]),
                    "version": versions.get(name),
                }
                for name in names
            ],
        }


def _active_versions(repo: ModelRepository | None, names: list[str]) -> dict[str, str | None]:
    """Each model's active version; missing where the repository cannot be read just now."""
    if repo is None:
        return {}
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = repo.active(name).active
        except Exception:
            log.warning("cannot read the active version of %s", name, exc_info=True)
    return found
