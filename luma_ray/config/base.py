"""What every config model shares: strict pydantic models, one-line errors, safe YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from luma_ray.errors import ConfigError


class Strict(BaseModel):
    """Unknown fields are errors; values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field; remove it or check its spelling"
    elif first["type"] == "missing":
        msg = "required field is missing; add it"
    return f"{source}: field '{where}': {msg}"


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's data (safe loader only); one-line ``ConfigError`` if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"{path}: cannot read {what} file ({err.strerror}); check the path"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} is not valid YAML; fix the syntax there") from None


def read_list_file(path: Path, field: str) -> list[Any]:
    """A file holding ``{<field>: [...]}`` or a bare list; the list."""
    data = read_yaml(path, field[:-1] if field.endswith("s") else field)
    if isinstance(data, list):
        data = {field: data}
    if not isinstance(data, dict) or field not in data:
        raise ConfigError(f"{path}: expected a list of {field} or a mapping with a '{field}' field")
    items: list[Any] = data[field]
    return items
