"""In-memory blob store: the working stand-in for unit tests of code that uses a ``BlobStore``.

Who calls this: unit tests of the result store, the model repository and workers pass an
``InMemoryBlobStore()`` through constructors instead of mocking storage. It applies the same key
rules as the real backends and passes the same contract suite (``tests/contract``), so code
tested against it behaves the same on ``file://`` and ``s3://``. Thread-safe; nothing persists.
"""

from __future__ import annotations

import builtins
import itertools
import threading
from pathlib import Path
from typing import BinaryIO

from luma_ray.errors import NotFound
from luma_ray.storage.base import check_range, write_file_atomically
from luma_ray.storage.fetch import Fetched, fetch_stream
from luma_ray.storage.keys import validate_key, validate_prefix

_ids = itertools.count(1)


class InMemoryBlobStore:
    """Objects in a dict; ``content_types`` records what ``put_*`` was told (for assertions)."""

    def __init__(self, name: str | None = None) -> None:
        self.uri: str = f"memory://{name or f'store-{next(_ids)}'}"
        self._objects: dict[str, bytes] = {}
        self.content_types: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryBlobStore({self.uri!r}, {len(self._objects)} objects)"

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        validate_key(key)
        with self._lock:
            self._objects[key] = bytes(data)
            self.content_types[key] = content_type
        return self.uri_for(key)

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> str:
        validate_key(key)
        return self.put_bytes(key, Path(path).read_bytes(), content_type)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        validate_key(key)
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = bytes(data)
            self.content_types[key] = None
        return True

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise NotFound(f"no object {key!r} in {self.uri}")
        return data

    def size(self, key: str) -> int:
        return len(self.get_bytes(key))

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        check_range(start, stop)
        return self.get_bytes(key)[start:stop]

    def get_file(self, key: str, path: str | Path) -> Path:
        data = self.get_bytes(key)

        def fill(out: BinaryIO) -> None:
            out.write(data)

        return write_file_atomically(path, fill)

    def fetch_file(self, key: str, path: str | Path) -> Fetched:
        return fetch_stream([self.get_bytes(key)], path)

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._objects.pop(key, None)
            self.content_types.pop(key, None)

    def list(self, prefix: str = "") -> builtins.list[str]:
        validate_prefix(prefix)
        with self._lock:
            return sorted(key for key in self._objects if key.startswith(prefix))

    def uri_for(self, key: str) -> str:
        validate_key(key)
        return f"{self.uri}/{key}"
