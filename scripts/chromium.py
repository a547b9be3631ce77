"""Find a headless Chromium for the browser tests, installing Debian's package if missing.

Who calls this: ``tests/browser/conftest.py`` (imports this file by path) and developers
(``python scripts/chromium.py`` prints the binary, installing it first if needed). The install
runs ``apt-get install -y chromium`` and so needs root (CI runs as root) and the Debian mirrors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure() -> str:
    """The Chromium binary; installs the ``chromium`` package first if none is found."""
    found = find()
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("chromium is not installed: run `sudo apt-get install -y chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 and command[1] == "install":
            raise RuntimeError(f"installing chromium failed: {done.stderr.strip()[-500:]}")
    found = find()
    if not found:
        raise RuntimeError("chromium was installed but is not on PATH")
    return found


def dump_dom(url: str, budget_ms: int = 8000) -> str:
    """Load ``url`` headless, let its scripts run for ``budget_ms`` of virtual time, return
    the DOM as HTML."""
    done = subprocess.run(
        [
            ensure(),
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


if __name__ == "__main__":
    print(ensure())
    sys.exit(0)
