"""What ``luma-ray up --detach`` started, kept in the data folder so ``down`` undoes that only.

``up`` either starts a Ray head of its own or adds luma_ray to a Ray cluster that already ran
(a cluster's head, where Ray belongs to someone else). Either way it writes an
:class:`UpRecord` to ``<data dir>/up.json``: the cluster's address and session, the Serve
applications it deployed and, when it started the head, that process. ``down`` reads it and
decides with :func:`plan_down`: remove luma_ray's applications and scheduler, and stop Ray only
if ``up`` started it (or when asked to).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from luma_ray.errors import ConfigError

RECORD_NAME = "up.json"


@dataclass(frozen=True)
class UpRecord:
    """The Ray cluster ``up --detach`` put luma_ray on, and what it started there."""

    address: str
    """The cluster's GCS address (``host:port``)."""
    session: str
    """Ray's session name of that cluster: a new cluster at the same address has another."""
    apps: tuple[str, ...] = ()
    """The Serve applications ``up`` deployed (worker pools, the HTTP API)."""
    head_pid: int | None = None
    """The ``ray start --head --block`` process ``up`` started; None: Ray ran before ``up``."""
    temp_dir: str | None = None
    """That head's Ray temp folder (``--temp-dir``)."""

    @property
    def started_ray(self) -> bool:
        return self.head_pid is not None

    def with_apps(self, apps: Iterable[str]) -> UpRecord:
        """This record with ``apps`` added (an ``up`` that changes pools keeps the old ones)."""
        return replace(self, apps=tuple(dict.fromkeys([*self.apps, *apps])))


def record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_NAME


def load_record(path: Path) -> UpRecord | None:
    """The record at ``path``; None if there is none. ``ConfigError`` if it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise _damaged(path, err) from None
    try:
        pid = data.get("head_pid")
        temp_dir = data.get("temp_dir")
        if not (pid is None or (isinstance(pid, int) and pid > 0)):
            raise ValueError(f"head_pid {pid!r} is not a process id")
        return UpRecord(
            address=_text(data["address"]),
            session=_text(data["session"]),
            apps=tuple(_text(app) for app in data.get("apps", [])),
            head_pid=pid,
            temp_dir=None if temp_dir is None else _text(temp_dir),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise _damaged(path, err) from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _damaged(path: Path, err: Exception) -> ConfigError:
    return ConfigError(
        f"{path} is not a record of luma-ray up ({err}); stop what runs by hand "
        "(ray status), then delete the file"
    )


def save_record(path: Path, record: UpRecord) -> None:
    """Write ``record`` to ``path`` whole (a crash leaves the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".tmp")
    data = {**asdict(record), "apps": list(record.apps)}
    staged.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(staged, path)


def forget_record(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class DownPlan:
    """What ``luma-ray down`` removes and stops."""

    apps: tuple[str, ...]
    """luma_ray's Serve applications to remove (with the scheduler actor)."""
    stop_head: bool
    """Stop the Ray head ``up`` started (that cluster only)."""
    ray_stop: bool
    """Run ``ray stop``: every Ray process on this machine (asked for, Ray not ``up``'s)."""


def plan_down(record: UpRecord | None, stop_ray: bool, default_apps: Sequence[str]) -> DownPlan:
    """``down``'s decision: luma_ray's apps go; Ray stops if ``up`` started it, and otherwise
    only when the user asks (``--stop-ray``). Without a record, the apps ``up`` deploys by
    default are luma_ray's."""
    apps = record.apps if record is not None else tuple(default_apps)
    own_head = record is not None and record.started_ray
    return DownPlan(apps=apps, stop_head=own_head, ray_stop=stop_ray and not own_head)
