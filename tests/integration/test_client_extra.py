"""``luma-ray generate --url URL --tier-key KEY`` from a virtual environment that has only
``luma_ray[client]`` (no Ray, no torch), against the session's live server: the video comes
back as an MP4. The install itself (no torch, no Ray) is checked in
tests/unit/test_install_extras.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.client_venv import client_venv
from tests.integration.test_http_api import make_key, wait_http

pytestmark = pytest.mark.timeout(900)


def test_generate_over_http_from_a_client_only_install(system: dict[str, Any], tmp_path: Path):
    wait_http(system)
    key = make_key(system, "client-extra", "api")
    bin_dir, run = client_venv(tmp_path)
    out = tmp_path / "boat.mp4"
    generated = run(
        str(bin_dir / "luma-ray"),
        "generate",
        "a paper boat",
        "--url",
        system["base_url"],
        "--tier-key",
        key,
        "--out",
        str(out),
        "--timeout",
        "300",
        timeout=420,
    )
    assert generated.returncode == 0, generated.stderr
    assert f"video: {out.resolve()}" in generated.stdout
    assert out.read_bytes()[4:8] == b"ftyp"  # an MP4
    listed = run(str(bin_dir / "pip"), "list", "--format=json")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not names & {"torch", "ray", "numpy"}, names
