"""The Ray auth token ``luma-ray up --detach`` makes sure of before it starts a Ray head.

Ray (2.60 and later) turns token authentication on, and ``ray start`` with ``RAY_AUTH_MODE=token``
refuses to run without a token; only ``ray.init()`` makes one. Ray looks for the token, in this
order, in ``RAY_AUTH_TOKEN``, in the file named by ``RAY_AUTH_TOKEN_PATH``, and in
``~/.ray/auth_token`` (docs.ray.io, "Token authentication"). This keeps a token the user set
up and otherwise writes the default file the way Ray's own ``ray get-auth-token --generate``
does (``secrets.token_hex(32)``), but private: the file 0600, a new folder 0700. Ray's helper
for that (``ray._private.authentication.authentication_token_setup``) is private API, and
writes the file with the default permissions.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from luma_ray.errors import ConfigError

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN_VAR = "RAY_AUTH_TOKEN"
TOKEN_PATH_VAR = "RAY_AUTH_TOKEN_PATH"


@dataclass(frozen=True)
class TokenSetup:
    """Where Ray will find its token (or why it needs none), and whether it was just made."""

    source: str
    created: bool = False
    needed: bool = True


def default_token_path(home: Path) -> Path:
    """Ray's default token file: ``~/.ray/auth_token``."""
    return home / ".ray" / "auth_token"


def ensure_auth_token(environ: Mapping[str, str], home: Path) -> TokenSetup:
    """Make sure Ray finds an auth token in this environment; create the default file if none.

    ``RAY_AUTH_MODE`` other than ``token`` needs none. A ``RAY_AUTH_TOKEN_PATH`` that names no
    token raises ``ConfigError``: a fresh token there could not match the cluster it was meant
    for, and Ray would not look elsewhere.
    """
    mode = environ.get(AUTH_MODE, "token").strip().lower()
    if mode != "token":
        return TokenSetup(f"{AUTH_MODE}={mode}", needed=False)
    if environ.get(TOKEN_VAR, "").strip():
        return TokenSetup(f"${TOKEN_VAR}")
    named = environ.get(TOKEN_PATH_VAR, "").strip()
    if named:
        path = Path(named).expanduser()
        if not _holds_token(path):
            raise ConfigError(
                f"{TOKEN_PATH_VAR}={named} names no token (the file is missing or empty); "
                f"put the cluster's token there, or unset {TOKEN_PATH_VAR} to use "
                f"{default_token_path(home)}"
            )
        return TokenSetup(str(path))
    path = default_token_path(home)
    if _holds_token(path):
        return TokenSetup(str(path))
    created = _write_token(path, secrets.token_hex(32))
    return TokenSetup(str(path), created=created)


def _holds_token(path: Path) -> bool:
    try:
        return path.is_file() and path.read_text(encoding="utf-8").strip() != ""
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read the Ray auth token {path} ({err}); fix or delete it"
        ) from None


def _write_token(path: Path, token: str) -> bool:
    """Write ``token`` to ``path`` (0600), which is missing or empty; False if another process
    wrote one first (that one is kept)."""
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        if path.exists():  # empty: fill it
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | nofollow)
        else:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600)
            except FileExistsError:
                return not _holds_token(path) and _write_token(path, token)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(token)
    except OSError as err:
        raise ConfigError(
            f"cannot write the Ray auth token {path} ({err.strerror}); "
            f"create it yourself (ray get-auth-token --generate) or set {TOKEN_VAR}"
        ) from None
    return True
