"""Install extras: ``luma_ray[client]`` is the HTTP client and ``luma-ray generate --url`` with
no Ray, torch, numpy or boto3; server commands without the server extra name the extra.

Two ways: in this environment with those modules made unimportable (fast), and in a new
virtual environment that installs only ``.[client]`` from the package index (slow, about a
minute; it needs the index reachable, as ``pip install`` does).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.client_venv import client_venv

REPO = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("ray", "torch", "numpy", "av", "safetensors", "PIL", "boto3", "botocore")
SERVER_ONLY += ("fastapi", "starlette", "sse_starlette", "multipart", "standardwebhooks")

# Runs luma-ray's main() with every server-only module unimportable, then says which of them
# got imported anyway (none can: an import raises ModuleNotFoundError, as if not installed).
BLOCKED_MAIN = textwrap.dedent(
    """
    import importlib.abc, json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from luma_ray.cli import main
    from luma_ray.client import AsyncLumaClient, LumaClient  # the HTTP client imports, too
    try:
        code = main(sys.argv[2:])
    except SystemExit as exit:  # --help
        code = exit.code
    sys.stdout.flush()
    sys.exit(code)
    """
)


def run_blocked(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_MAIN, json.dumps(SERVER_ONLY), *argv],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_generate_help_and_the_http_client_need_no_server_modules() -> None:
    result = run_blocked("generate", "--help")
    assert result.returncode == 0, result.stderr
    assert "--url" in result.stdout and "--tier-key" in result.stdout


def test_generate_over_http_runs_without_ray() -> None:
    """``generate --url --tier-key`` goes as far as the network with no Ray installed: an
    unreachable server is the error, not a missing module."""
    url = f"http://127.0.0.1:{closed_port()}"
    result = run_blocked("generate", "a red circle", "--url", url, "--tier-key", "lr_x_y")
    assert result.returncode == 1, result.stderr
    assert f"cannot reach {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_command_without_the_server_extra_names_the_extra() -> None:
    result = run_blocked("up", "--detach", "--data-dir", "/nonexistent/luma")
    assert result.returncode == 2, result.stderr
    assert "pip install 'luma_ray[server]'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_s3_store_without_boto3_names_the_s3_extra() -> None:
    code = textwrap.dedent(
        """
        import importlib.abc, sys
        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.partition(".")[0] in ("boto3", "botocore"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, NotInstalled())
        from luma_ray.errors import ConfigError
        from luma_ray.storage import open_store
        try:
            open_store("s3://results-bucket/prefix")
        except ConfigError as err:
            print(err)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "pip install 'luma_ray[s3]'" in result.stdout, result.stderr


@pytest.mark.timeout(900)
def test_client_extra_in_an_empty_venv_installs_no_torch_and_no_ray(tmp_path: Path) -> None:
    """``pip install ".[client]"`` into a new virtual environment (from the package index):
    no torch, Ray, numpy or boto3 come with it, ``luma-ray generate --help`` runs, the HTTP
    client imports, and ``generate --url`` reaches the network."""
    bin_dir, run = client_venv(tmp_path)
    env_dir = bin_dir.parent

    listed = run(str(bin_dir / "pip"), "list", "--format=json")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "luma-ray" in names or "luma_ray" in names, names
    assert "httpx" in names and "pydantic" in names
    assert not names & {"torch", "ray", "numpy", "boto3", "av", "safetensors"}, names

    helped = run(str(bin_dir / "luma-ray"), "generate", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--tier-key" in helped.stdout

    imported = run(
        str(bin_dir / "python"),
        "-c",
        "from luma_ray.client import AsyncLumaClient, LumaClient; import luma_ray, sys; "
        "print(luma_ray.__file__); assert 'ray' not in sys.modules",
    )
    assert imported.returncode == 0, imported.stderr
    assert str(env_dir) in imported.stdout  # the venv's copy, not this checkout

    url = f"http://127.0.0.1:{closed_port()}"
    generated = run(str(bin_dir / "luma-ray"), "generate", "x", "--url", url, "--tier-key", "k")
    assert generated.returncode == 1 and f"cannot reach {url}" in generated.stderr, generated.stderr

    refused = run(str(bin_dir / "luma-ray"), "status")
    assert refused.returncode == 2, refused.stderr
    assert "pip install 'luma_ray[server]'" in refused.stderr
