#!/usr/bin/env bash
# The fresh-machine check: a user who never ran Ray runs `luma-ray up --detach`, makes one
# video through the running cluster, and runs `luma-ray down`, which must leave no process.
#
# HOME, Ray's temp folder and the data folder are new, empty and this run's own, so nothing of
# this machine's Ray state is read or touched; every process the run starts carries a marker
# in its environment, and only those are checked (and, on failure, ended). Another Ray cluster
# running on this machine would share ports with this one: the check then stops, exit 3.
#
# Usage: .ci/fresh_machine.sh        (about 2 minutes on 2 cores; needs `luma-ray` installed)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if pgrep -f gcs_server >/dev/null; then
  echo "fresh_machine: another Ray cluster runs on this machine; run this check when none does" >&2
  exit 3
fi

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/luma-fresh.XXXXXX")
MARK="LUMA_FRESH_RUN=$(basename "$ROOT")"
unset RAY_ADDRESS RAY_AUTH_MODE RAY_AUTH_TOKEN RAY_AUTH_TOKEN_PATH
export HOME="$ROOT/home" RAY_TMPDIR="$ROOT/tmp" LUMA_RAY_HOME="$ROOT/data" "$MARK"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's luma_ray, in every process
mkdir -p "$HOME" "$RAY_TMPDIR" "$LUMA_RAY_HOME"
started=$SECONDS

# This run's processes (pids, space-separated): the marker in their environment, or this run's
# folder in their command line. Pure bash: a helper program would carry the marker itself.
ours() {
  local dir pid found=() env=() args=()
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = "$$" ] && continue
    mapfile -d '' env 2>/dev/null <"$dir/environ" || env=()
    mapfile -d '' args 2>/dev/null <"$dir/cmdline" || args=()
    if [[ " ${env[*]} " == *" $MARK "* || "${args[*]}" == *"$ROOT"* ]]; then
      found+=("$pid")
    fi
  done
  echo "${found[*]}"
}

# Wait up to $1 seconds for this run's processes to end; print those left.
left_after() {
  local deadline=$((SECONDS + $1)) left
  while :; do
    left=$(ours)
    if [ -z "$left" ] || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$left"
      return 0  # a bare return in the EXIT trap would return the failed step's status
    fi
    sleep 1
  done
}

cleanup() {
  local rc=$? left
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    echo "fresh_machine: FAILED (exit $rc) after $((SECONDS - started)) s" >&2
    tail -n 20 "$LUMA_RAY_HOME/ray-head.log" 2>/dev/null | sed 's/^/  ray-head.log: /' >&2 || true
    timeout 120 luma-ray down >&2 || true
  fi
  left=$(left_after 15)
  if [ -n "$left" ]; then
    echo "fresh_machine: ending processes this run left: $left" >&2
    ps -o pid=,args= -p "${left// /,}" >&2 || true
    # shellcheck disable=SC2086  # one pid per word
    kill -TERM $left 2>/dev/null || true
    sleep 5
    left=$(ours)
    # shellcheck disable=SC2086
    if [ -n "$left" ]; then kill -KILL $left 2>/dev/null || true; fi
  fi
  rm -rf "$ROOT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "--- [$((SECONDS - started)) s] $*"; }

PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "luma-ray up --detach --port $PORT (HOME=$HOME)"
timeout 240 luma-ray up --detach --port "$PORT"
test "$(stat -c %a "$HOME/.ray/auth_token")" = 600 || { echo "auth token is not 0600" >&2; exit 1; }

step "luma-ray generate through the running cluster (the README's prompt)"
PROMPT="a green square moving left on a white background"
timeout 180 luma-ray generate "$PROMPT" --out "$ROOT/sq.mp4"
test -s "$ROOT/sq.mp4" || { echo "no video at $ROOT/sq.mp4" >&2; exit 1; }
test "$(head -c 8 "$ROOT/sq.mp4" | tail -c 4)" = ftyp || { echo "sq.mp4 is not an MP4" >&2; exit 1; }
echo "video: $(stat -c %s "$ROOT/sq.mp4") bytes"
# The reference checker must accept the decoded MP4 (docs/models.md).
python - "$ROOT/sq.mp4" "$PROMPT" <<'PY'
import sys
from pathlib import Path

from luma_ray.models.encode import decode_mp4
from luma_ray.models.reference.check import check

verdict = check(decode_mp4(Path(sys.argv[1])), sys.argv[2])
print("checker:", "accepts the video" if verdict.ok else "; ".join(verdict.reasons))
sys.exit(0 if verdict.ok else 1)
PY

step "luma-ray down"
timeout 120 luma-ray down | tee "$ROOT/down.txt"
grep -q "stopped the Ray cluster luma-ray up started" "$ROOT/down.txt"

step "no process of this run is left"
left=$(left_after 20)
if [ -n "$left" ]; then
  echo "fresh_machine: processes left after luma-ray down: $left" >&2
  ps -o pid=,args= -p "${left// /,}" >&2 || true
  exit 1
fi
step "fresh_machine: OK"
