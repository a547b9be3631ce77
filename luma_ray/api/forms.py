"""Form bodies (``multipart/form-data`` as the OpenAI SDK sends it, or urlencoded), parsed
from the bytes :class:`~luma_ray.api.bodies.BodyLimit` already read, with every part bounded.

Nothing is spooled: a part's bytes are kept only for text fields, and only up to
``max_part_bytes``; a file part's bytes are counted, never kept, and its name is reported
so the route can refuse it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from luma_ray.errors import InvalidRequest, TooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["MAX_FORM_PARTS", "MAX_PART_BYTES", "Form", "parse_form"]

MAX_PART_BYTES = 64 << 10
"""The most bytes one form part may carry (a prompt is at most 2,000 characters)."""
MAX_FORM_PARTS = 32
"""The most parts (fields and files) one form may have."""


@dataclass(frozen=True)
class Form:
    """A parsed form: its text fields, the names of its file parts (their bytes dropped), and
    the bytes of the file parts the caller asked to keep."""

    fields: dict[str, str]
    files: tuple[str, ...]
    kept: dict[str, bytes] = field(default_factory=dict)


def parse_form(
    body: bytes,
    content_type: str,
    max_part_bytes: int = MAX_PART_BYTES,
    keep_files: frozenset[str] = frozenset(),
) -> Form:
    """Parse a ``multipart/form-data`` or ``application/x-www-form-urlencoded`` body.

    Raises :class:`TooLarge` for a part over ``max_part_bytes`` and :class:`InvalidRequest`
    for a malformed body, a field given twice, a text field that is not UTF-8, or more than
    :data:`MAX_FORM_PARTS` parts; each message names the field. The bytes of file parts named
    in ``keep_files`` are kept (bounded by the body, which ``BodyLimit`` bounded), not counted
    against ``max_part_bytes``.
    """
    kind, params = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        return _urlencoded(body, max_part_bytes)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest("multipart/form-data needs a boundary in its Content-Type")
    parts = _Parts(max_part_bytes, keep_files)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise InvalidRequest("the multipart body is malformed; send it as the SDK does") from None
    if not parts.ended:
        raise InvalidRequest("the multipart body ends before its closing boundary")
    return Form(parts.fields, tuple(parts.files), parts.kept)


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"form field {name!r} is not UTF-8 text") from None


def _add(fields: dict[str, str], files: list[str], name: str, value: str | None) -> None:
    if name in fields or name in files:
        raise InvalidRequest(f"form field {name!r} is given twice; send it once")
    if len(fields) + len(files) >= MAX_FORM_PARTS:
        raise InvalidRequest(f"the form has more than {MAX_FORM_PARTS} fields")
    if value is None:
        files.append(name)
    else:
        fields[name] = value


def _urlencoded(body: bytes, max_part_bytes: int) -> Form:
    fields: dict[str, str] = {}
    files: list[str] = []
    if body.count(b"&") >= MAX_FORM_PARTS:
        raise InvalidRequest(f"the form has more than {MAX_FORM_PARTS} fields")
    text = _text("(body)", body)
    for name, value in parse_qsl(text, keep_blank_values=True, separator="&"):
        if len(value.encode("utf-8")) > max_part_bytes:
            raise TooLarge(f"form field {name!r} is over {max_part_bytes} bytes")
        _add(fields, files, name, value)
    return Form(fields, tuple(files))


class _Parts:
    """The parser's callbacks: collect each part's headers, then its bytes (text fields)."""

    def __init__(self, max_part_bytes: int, keep_files: frozenset[str] = frozenset()) -> None:
        self.max_part_bytes = max_part_bytes
        self.keep_files = keep_files
        self.kept: dict[str, bytes] = {}
        self.fields: dict[str, str] = {}
        self.files: list[str] = []
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._size = 0
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition, self._name, self._is_file = b"", "", False
        self._size = 0
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        kind, params = parse_options_header(self._disposition)
        if kind != b"form-data" or b"name" not in params:
            raise InvalidRequest("each multipart part needs Content-Disposition: form-data; name")
        self._name = _text("(part name)", params[b"name"])
        self._is_file = b"filename" in params

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._is_file and self._name in self.keep_files:
            self._data += data[start:end]
            return
        if self._size > self.max_part_bytes:
            raise TooLarge(f"form field {self._name!r} is over {self.max_part_bytes} bytes")
        if not self._is_file:
            self._data += data[start:end]

    def _part_end(self) -> None:
        value = None if self._is_file else _text(self._name, bytes(self._data))
        _add(self.fields, self.files, self._name, value)
        if self._is_file and self._name in self.keep_files:
            self.kept[self._name] = bytes(self._data)

    def _end(self) -> None:
        self.ended = True
