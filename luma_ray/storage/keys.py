"""Object keys: the one rule every blob store applies before it touches anything.

Who calls this: every method of every ``BlobStore`` (local, S3, in-memory) validates its key
here first, and ``list`` validates its prefix. Keys often carry names that came from users
(job ids, model names, file names in a manifest), so this is the path-traversal guard: a valid
key is a relative POSIX path whose segments can never climb out of the store's root directory
or S3 prefix. The local store still checks the resolved path as a second guard (symlinks).

A valid key:

- is a non-empty ``str`` of at most :data:`MAX_KEY_BYTES` bytes in UTF-8;
- is relative (no leading ``/``, no Windows drive such as ``C:``) and uses ``/`` only
  (no backslash);
- has no empty segment (``a//b``, trailing ``/``) and no ``.`` or ``..`` segment;
- has no NUL or other control character;
- has no segment starting with :data:`RESERVED_PREFIX` (the local store's temporary files).

Percent signs are ordinary characters: ``%2e%2e/x`` is the literal directory ``%2e%2e``.
"""

from __future__ import annotations

import re
import unicodedata

from luma_ray.errors import InvalidRequest

MAX_KEY_BYTES = 1024
RESERVED_PREFIX = ".luma-tmp"
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHOWN_CHARS = 80


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key; raise ``InvalidRequest`` if not."""
    _check_text(key, what="key")
    if key.endswith("/"):
        raise InvalidRequest(f"key {_show(key)} ends with '/'; a key names an object, not a folder")
    _check_segments(key, key.split("/"), what="key")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is valid for ``list``; ``""`` means every key.

    A prefix is a plain string prefix (as in S3): ``results/gen_`` matches
    ``results/gen_abc/video.mp4``. Every complete segment must be a valid key segment; a
    trailing ``/`` is allowed.
    """
    if prefix == "":
        return prefix
    _check_text(prefix, what="prefix")
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]
    _check_segments(prefix, segments, what="prefix")
    return prefix


def join_key(*parts: str) -> str:
    """Join parts with ``/`` and validate the result: ``join_key("models", name, "a.yaml")``."""
    return validate_key("/".join(parts))


def results_prefix(job_id: str) -> str:
    """Where every attempt of a job stores its results: ``results/<job id>/``."""
    return f"results/{validate_key(job_id)}/"


def result_key(job_id: str, token: int, name: str) -> str:
    """One result file of one lease: each lease writes under its own fencing token, so a
    late, fenced-off worker cannot overwrite the files of the attempt that was committed."""
    return f"{results_prefix(job_id)}{token}/{name}"


def _check_text(value: object, *, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string, got {type(value).__name__}")
    if value == "":
        raise InvalidRequest(f"{what} is empty; use a relative path such as 'results/x.mp4'")
    try:
        size_bytes = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} {_show(value)} is not valid Unicode text") from None
    if size_bytes > MAX_KEY_BYTES:
        raise InvalidRequest(
            f"{what} is {size_bytes} bytes in UTF-8; the limit is {MAX_KEY_BYTES}: {_show(value)}"
        )
    bad = next((ch for ch in value if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise InvalidRequest(
            f"{what} {_show(value)} contains the control character {bad!r}; remove it"
        )
    if "\\" in value:
        raise InvalidRequest(f"{what} {_show(value)} contains a backslash; separate with '/'")
    if value.startswith("/"):
        raise InvalidRequest(f"{what} {_show(value)} is absolute; drop the leading '/'")
    if _DRIVE.match(value):
        raise InvalidRequest(
            f"{what} {_show(value)} starts with a drive letter; use a relative path"
        )


def _check_segments(value: str, segments: list[str], *, what: str) -> None:
    for segment in segments:
        if segment == "":
            raise InvalidRequest(f"{what} {_show(value)} has an empty segment ('//'); remove it")
        if segment in (".", ".."):
            raise InvalidRequest(
                f"{what} {_show(value)} has a {segment!r} segment; keys cannot refer to folders "
                "relative to each other"
            )
        if segment.startswith(RESERVED_PREFIX):
            raise InvalidRequest(
                f"{what} {_show(value)} has a segment starting with {RESERVED_PREFIX!r}, "
                "which is reserved for temporary files"
            )


def _show(value: str) -> str:
    """A bounded repr for error messages (keys may be long)."""
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return repr(value[:_SHOWN_CHARS]) + f"... ({len(value)} chars)"
