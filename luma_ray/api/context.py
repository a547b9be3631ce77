"""What every route of the app needs: its ports, its settings and the caller.

``create_app`` stores one :class:`Ports` on the app; routes reach it with :func:`ports` and
authenticate the bearer key through the :data:`Caller` and :data:`Admin` dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from luma_ray.api.keys import KeyStore, Principal
from luma_ray.errors import Forbidden, NotFound
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.protocol import AsyncSchedulerPort
from luma_ray.storage import BlobStore

_bearer = HTTPBearer(auto_error=False)


@dataclass
class ApiSettings:
    """Knobs of the HTTP layer, fixed when the app is built."""

    allow_private_callbacks: bool = False
    """Let callback_url point at loopback/private hosts (tests, on-prem receivers)."""
    sse_poll_s: float = 0.2
    sse_timeout_s: float = 3600.0


@dataclass
class Ports:
    scheduler: AsyncSchedulerPort
    keys: KeyStore
    store: BlobStore
    settings: ApiSettings
    repository: ModelRepository | None = None
    """The model repository the admin model endpoints act on (None: no repository)."""


def ports(request: Request) -> Ports:
    return request.app.state.ports  # type: ignore[no-any-return]


def repository(request: Request) -> ModelRepository:
    repo = ports(request).repository
    if repo is None:
        raise NotFound("this deployment has no model repository")
    return repo


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; 401 when missing or wrong."""
    key = credentials.credentials if credentials else None
    return ports(request).keys.authenticate(key)


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Forbidden("this endpoint needs an admin key")
    return who


Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
