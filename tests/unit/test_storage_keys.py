"""Key validation: the path-traversal guard every blob store applies (luma_ray/storage/keys.py)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from luma_ray.errors import InvalidRequest
from luma_ray.storage import InMemoryBlobStore, LocalBlobStore
from luma_ray.storage.keys import (
    MAX_KEY_BYTES,
    RESERVED_PREFIX,
    join_key,
    validate_key,
    validate_prefix,
)

GOOD_KEYS = [
    "a",
    "results/gen_abc/video.mp4",
    "models/luma-tiny/versions/v3/manifest.yaml",
    "%2e%2e/x",  # percent-encoding is literal text, not a parent folder
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "...",  # three dots is a name, only "." and ".." are special
    "..a/b..",
    ".hidden/file",
    "a b/c d.txt",
    "ünïcode/名前.mp4",
    "ab:c/d:e",  # colons are fine; only a drive letter ("c:") is refused
    "x" * MAX_KEY_BYTES,
]

# (key, words the message must contain so the caller knows what to fix)
BAD_KEYS = [
    ("", "empty"),
    ("/abs", "absolute"),
    ("/etc/passwd", "absolute"),
    ("//server/share", "absolute"),
    ("a/../../etc/passwd", "'..'"),
    ("..", "'..'"),
    ("../x", "'..'"),
    ("a/..", "'..'"),
    ("a/./b", "'.'"),
    (".", "'.'"),
    ("./a", "'.'"),
    ("a//b", "empty segment"),
    ("a/", "ends with '/'"),
    ("a/b/", "ends with '/'"),
    ("C:\\x", "backslash"),
    ("a\\..\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("C:/x", "drive letter"),
    ("c:", "drive letter"),
    ("a\x00b", "control character"),
    ("a\nb", "control character"),
    ("a\tb", "control character"),
    ("a\x7fb", "control character"),
    ("a\x85b", "control character"),  # C1 control (NEL)
    ("x" * (MAX_KEY_BYTES + 1), "limit is 1024"),
    ("é" * 513, "limit is 1024"),  # 1026 bytes in UTF-8 though only 513 characters
    ("a\udc80b", "not valid unicode"),  # lone surrogate (e.g. from os.fsdecode)
    (f"a/{RESERVED_PREFIX}-x.part", "reserved"),
    (RESERVED_PREFIX, "reserved"),
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_valid_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(("key", "words"), BAD_KEYS)
def test_invalid_keys_are_refused_with_a_reason(key: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_key(key)
    assert words.lower() in str(info.value).lower()
    assert info.value.code == "invalid_request"


@pytest.mark.parametrize("value", [None, 3, b"results/x", Path("a/b")])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidRequest, match="must be a string"):
        validate_key(value)  # type: ignore[arg-type]


def test_long_key_message_is_bounded() -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_key("a/" * 2000)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("prefix", ["", "results/", "results/gen_", "r", "a/b/c/", "%2e%2e/"])
def test_valid_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/abs/", "../", "a/../", "a//", "a\\b", "./", "a\x00"])
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_prefix(prefix)


def test_join_key_validates_the_joined_result() -> None:
    assert join_key("models", "luma-tiny", "active.yaml") == "models/luma-tiny/active.yaml"
    with pytest.raises(InvalidRequest):
        join_key("models", "..", "secrets")
    with pytest.raises(InvalidRequest):
        join_key("models", "", "x")  # an empty name from a user makes an empty segment


def _hostile_keys(count: int) -> list[str]:
    """Hostile-looking keys built from a fixed alphabet (deterministic)."""
    rng = random.Random(1234)
    pieces = ["..", ".", "", "a", "%2e", "\\", "/", "b.c", "\x00", "~", "C:", " "]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(count)]


def test_no_accepted_key_escapes_a_local_root(tmp_path: Path) -> None:
    """Whatever validate_key accepts, the local store maps inside its root (never above it)."""
    accepted = 0
    for i, key in enumerate(_hostile_keys(400)):
        base = tmp_path / str(i)
        store = LocalBlobStore(base / "root")
        try:
            validate_key(key)
        except InvalidRequest:
            with pytest.raises(InvalidRequest):
                store.put_bytes(key, b"x")
            assert store.list() == []
            continue
        accepted += 1
        store.put_bytes(key, b"x")
        written = [Path(d) / f for d, _, files in os.walk(base) for f in files]
        assert len(written) == 1, key
        assert written[0].resolve().is_relative_to(store.root), (key, written)
        assert store.list() == [key]
    assert 20 < accepted < 380  # the generator produced both kinds


def test_local_store_refuses_a_symlink_leading_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    store = LocalBlobStore(root)
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidRequest, match="outside the store root"):
        store.put_bytes("link/passwd", b"x")
    with pytest.raises(InvalidRequest, match="outside the store root"):
        store.get_bytes("link/passwd")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("key", [k for k, _ in BAD_KEYS[:12]])
def test_memory_store_applies_the_same_rule(key: str) -> None:
    store = InMemoryBlobStore()
    with pytest.raises(InvalidRequest):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidRequest):
        store.exists(key)
    assert store.list() == []
