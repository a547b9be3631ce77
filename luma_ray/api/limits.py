"""What a caller may ask for: its tier's limits (``/v1/limits``) and the models
(``/v1/models``) with their request limits and active versions, from the replica's copy of the
scheduler's limits (``limits_cache``: at most ``ApiSettings.limits_ttl_s`` old)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import FastAPI, Request
from typing_extensions import TypedDict

from luma_ray.api.context import Caller, ports
from luma_ray.config import TenantLimits
from luma_ray.jobs import ModelLimits
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.protocol import TierView

log = logging.getLogger(__name__)


class LimitsOut(TypedDict):
    """The caller's tier, its per-tenant caps, and every model's request limits."""

    tenant: str
    tier: TierView
    tenant_limits: TenantLimits | None
    models: dict[str, ModelLimits]


class ModelOut(TypedDict):
    id: str
    object: Literal["model"]
    limits: ModelLimits
    version: str | None


class ModelPage(TypedDict):
    object: Literal["list"]
    data: list[ModelOut]


def add_routes(app: FastAPI) -> None:
    @app.get("/v1/limits")
    async def limits(request: Request, who: Caller) -> LimitsOut:
        described = await ports(request).model_limits.get()
        return {
            "tenant": who.tenant,
            "tier": described.tier(who.tier),
            "tenant_limits": described.tenant_limits.get(who.tier),
            "models": dict(described.models),
        }

    @app.get("/v1/models")
    async def models(request: Request, who: Caller) -> ModelPage:
        """Models with their request limits and active version (pin one as ``name@version``)."""
        described = await ports(request).model_limits.get()
        names = sorted(described.models)
        versions = await asyncio.to_thread(_active_versions, ports(request).repository, names)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "limits": described.models[name],
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
