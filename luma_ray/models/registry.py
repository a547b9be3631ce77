"""Built-in models by name, and the ``module:Class`` entrypoint loader.

Workers call ``get_model_class(name)`` for the models this package ships; a model version from
the repository names its class the same way in its manifest (``entrypoint: module:Class``,
docs/repository.md) and goes through ``import_entrypoint``. Entries are strings, imported on first
use, so importing the registry (the ingress does, to list models) loads no torch.
"""

from __future__ import annotations

import importlib

from luma_ray.errors import NotFound
from luma_ray.models.interface import VideoModel

_MEMBERS = ("name", "limits", "load", "generate")

MODELS: dict[str, str] = {
    "luma-tiny": "luma_ray.models.reference.model:LumaTiny",
}
"""Model name → ``module:Class`` entrypoint of every model shipped in this package."""


def get_model_class(name: str) -> type[VideoModel]:
    """The class registered as ``name``; ``NotFound`` lists the known names if there is none."""
    entrypoint = MODELS.get(name)
    if entrypoint is None:
        known = ", ".join(sorted(MODELS))
        raise NotFound(f"no model named {name!r}; known models: {known}")
    return import_entrypoint(entrypoint)


def import_entrypoint(entrypoint: str) -> type[VideoModel]:
    """Import ``package.module:Class`` and return the class.

    Raises ``NotFound`` when the module or the attribute is missing, or it is not a class with
    the ``VideoModel`` members, so a bad manifest fails the version's load (and the worker keeps
    the old one) with a clear message.
    """
    module_name, sep, attr = entrypoint.partition(":")
    if not sep or not module_name or not attr:
        raise NotFound(f"entrypoint {entrypoint!r} is not of the form 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NotFound(f"entrypoint {entrypoint!r}: module {exc.name!r} not found") from exc
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise NotFound(f"entrypoint {entrypoint!r}: {module_name} has no class {attr!r}")
    missing = [member for member in _MEMBERS if not hasattr(cls, member)]
    if missing:
        raise NotFound(f"entrypoint {entrypoint!r} is not a VideoModel: it lacks {missing}")
    return cls
