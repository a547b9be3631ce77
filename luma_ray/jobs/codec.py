"""Job records to and from JSON text: the journal's row format.

The journal (``luma_ray.scheduler.journal``) stores ``job_to_json`` and rebuilds jobs with
``job_from_json`` after a restart, so every field round-trips exactly. msgspec reads and writes
the dataclasses as they are declared (enums as their values, tuples as lists), twice as fast
as pydantic each way (a restart decodes every queued job, and every change writes a row);
rows written before a field existed get its default. A row msgspec refuses (an earlier
format, or damage) goes to pydantic, which mends earlier formats and names what is wrong.
"""

from __future__ import annotations

import json

import msgspec
from pydantic import TypeAdapter

from luma_ray.jobs.model import Job
from luma_ray.jobs.request import DEFAULT_STEPS

FORMAT_VERSION = 1
"""Written into every row as ``v``; a reader of a newer format knows to refuse it."""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Job)
_JOB: TypeAdapter[Job] = TypeAdapter(Job)


def job_to_json(job: Job) -> str:
    """Every field of ``job`` as one JSON object, with the format version."""
    body = _ENCODER.encode(job).decode()
    return f'{{"v":{FORMAT_VERSION},{body[1:]}'


def job_from_json(text: str | bytes) -> Job:
    """The inverse of :func:`job_to_json`, also for rows of earlier formats. Empty mappings
    come back as the one shared :data:`~luma_ray.jobs.model.EMPTY`."""
    try:
        return _DECODER.decode(text).share_empty_maps()  # ignores the "v" key
    except msgspec.DecodeError:
        pass
    data = json.loads(text)
    data.pop("v", None)
    params = data.get("params") or {}
    if params.get("steps") is None:  # before intake resolved steps, rows said null
        params["steps"] = DEFAULT_STEPS
    return _JOB.validate_python(data).share_empty_maps()
