"""Job records to and from JSON text: the journal's row format.

The journal (``luma_ray.scheduler.journal``) stores ``job_to_json`` and rebuilds jobs with
``job_from_json`` after a restart, so every field round-trips exactly. Pydantic reads and
writes the dataclasses as they are declared (enums as their values, tuples as lists); rows
written before a field existed get its default.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from luma_ray.jobs.model import Job
from luma_ray.jobs.request import DEFAULT_STEPS

FORMAT_VERSION = 1
"""Written into every row as ``v``; a reader of a newer format knows to refuse it."""

_JOB: TypeAdapter[Job] = TypeAdapter(Job)


def job_to_json(job: Job) -> str:
    """Every field of ``job`` as one JSON object, with the format version."""
    body = _JOB.dump_json(job).decode()
    return f'{{"v":{FORMAT_VERSION},{body[1:]}'


def job_from_json(text: str | bytes) -> Job:
    """The inverse of :func:`job_to_json`, also for rows of earlier formats.

    A current row is parsed and checked in one pass by pydantic-core (half the time of
    ``json.loads`` then validation: a restart reads every queued job); a row it refuses takes
    the second path, which mends earlier formats and names what is wrong with a damaged one."""
    try:
        return _JOB.validate_json(text)  # ignores the "v" key, as the path below drops it
    except ValueError:
        pass
    data = json.loads(text)
    data.pop("v", None)
    params = data.get("params") or {}
    if params.get("steps") is None:  # before intake resolved steps, rows said null
        params["steps"] = DEFAULT_STEPS
    return _JOB.validate_python(data)
