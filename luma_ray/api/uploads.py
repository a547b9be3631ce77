"""A multipart upload streamed to a private temporary file, never held whole in memory.

``POST /v1/files`` calls :func:`receive_upload`: the body is parsed as it arrives (python-
multipart's push parser), the one file part is written to a temporary file (mode 0600) and
counted, and the upload stops with 413 ``too_large`` as soon as the part passes ``max_bytes``;
the rest of the body is never read. Text parts are refused (the form has one field, ``file``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from luma_ray.errors import InvalidRequest, TooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
MULTIPART_SLACK = 64 << 10
"""Bytes a multipart body may carry beyond its file (boundaries, part headers)."""


@dataclass(frozen=True)
class Upload:
    """The uploaded file: where it is on disk (the caller deletes it), its size, its name."""

    path: Path
    size: int
    filename: str


async def receive_upload(chunks: AsyncIterator[bytes], content_type: str, max_bytes: int) -> Upload:
    """Stream a ``multipart/form-data`` body with one ``file`` part into a temporary file."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "send the file as multipart/form-data with one part named 'file' "
            "(curl -F file=@picture.png)"
        )
    fd, name = tempfile.mkstemp(prefix="luma-upload-")  # 0600
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            parts = _FilePart(out, max_bytes)
            parser = MultipartParser(boundary, parts.callbacks())
            try:
                body = 0
                async for chunk in chunks:
                    body += len(chunk)
                    if body > max_bytes + MULTIPART_SLACK:  # a part the parser still holds
                        raise parts.too_large()
                    parser.write(chunk)
                parser.finalize()
            except FormParserError:
                raise InvalidRequest("the multipart body is malformed") from None
        if not parts.ended:
            raise InvalidRequest("the multipart body ends before its closing boundary")
        if not parts.found:
            raise InvalidRequest("the form has no file part named 'file'")
        return Upload(path, parts.size, parts.filename)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


class _FilePart:
    """Parser callbacks: write the ``file`` part's bytes out, refuse any other part."""

    def __init__(self, out: IO[bytes], max_bytes: int) -> None:
        self.out, self.max_bytes = out, max_bytes
        self.size, self.found, self.ended, self.filename = 0, False, False, ""
        self._header_name = self._header_value = self._disposition = b""
        self._writing = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition, self._writing = b"", False

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        kind, params = parse_options_header(self._disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if kind != b"form-data" or name != FILE_FIELD or b"filename" not in params:
            raise InvalidRequest(
                f"unexpected form part {name[:64]!r}; send one file part named 'file'"
            )
        if self.found:
            raise InvalidRequest("the form has more than one file; upload one file at a time")
        self.found, self._writing = True, True
        self.filename = params[b"filename"].decode("utf-8", "replace")[:255]

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise self.too_large()
        self.out.write(data[start:end])

    def too_large(self) -> TooLarge:
        return TooLarge(f"the file is over {self.max_bytes} bytes; upload a smaller file")

    def _end(self) -> None:
        self.ended = True
