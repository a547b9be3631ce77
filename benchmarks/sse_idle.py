"""An event stream idle in the queue for two minutes, at the default keep-alive interval.

Load balancers and proxies cut a connection that carries no bytes for about a minute. A job can
wait in the queue far longer than that, so its event stream sends a keep-alive comment every
``sse_keepalive_s`` (15 s by default). This check opens one stream (the app in process, driven
through ASGI, over ``InProcessScheduler`` and a SQLite journal), keeps its job queued with no
worker for ``--idle-s`` (120 s), then lets a worker run it, and checks that the stream got a
keep-alive at least every interval while idle, was still open, and then received the job's
events through ``done``. The unit tests check the same at a fast interval
(tests/unit/test_event_streams.py); this runs it at the real one.

    python benchmarks/sse_idle.py [--idle-s 120]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sse_fanout import LIMITS, Stream  # noqa: E402

from luma_ray.api.app import ApiSettings, create_app  # noqa: E402
from luma_ray.api.keys import KeyStore  # noqa: E402
from luma_ray.config import default_tiers, parse_config  # noqa: E402
from luma_ray.scheduler.journal import Journal  # noqa: E402
from luma_ray.scheduler.protocol import (  # noqa: E402
    Complete,
    Heartbeat,
    InProcessScheduler,
    Pull,
    Submit,
    SubmitRequest,
)
from luma_ray.scheduler.service import SchedulerService  # noqa: E402
from luma_ray.storage import LocalBlobStore  # noqa: E402


async def run(idle_s: float, root: Path) -> bool:
    svc = SchedulerService(parse_config({}), Journal(root / "j.sqlite"), LIMITS, time.time)
    keys = KeyStore(root / "keys.sqlite", [t.name for t in default_tiers()])
    settings = ApiSettings()
    app = create_app(InProcessScheduler(svc), keys, LocalBlobStore(root / "results"), settings)
    key, _ = keys.create("idle", "free", now_s=0)
    job = svc.call(Submit(SubmitRequest(prompt="waits", tenant="idle", tier="free", steps=2)))
    stream = Stream(app, job.id, key)
    await asyncio.wait_for(stream.opened.wait(), 30)
    await asyncio.sleep(idle_s)  # the job waits in the queue: no worker pulls
    idle_comments, open_after_idle = stream.comments, not stream.task.done()
    lease = svc.call(Pull("w", "local", ("luma-tiny",)))
    assert lease is not None
    for step in (1, 2):
        svc.call(Heartbeat(lease.job_id, lease.token, step, 2))
    svc.call(Complete(lease.job_id, lease.token, {"video": "file:///v.mp4"}))
    await asyncio.wait_for(stream.task, 60)
    names = [event for _, _, event, _ in stream.events]
    states = [data.get("state") for _, _, event, data in stream.events if event == "state"]
    # One every interval from the stream's start: the idle window (from just after the stream
    # opened) holds at least all but the last one whose time it reaches.
    want = int(idle_s // settings.sse_keepalive_s) - 1
    ok = open_after_idle and idle_comments >= want and names[-1] == "done"
    ok = ok and states[0] == "queued" and "succeeded" in states
    print(f"idle {idle_s:.0f} s in the queue, keep-alive every {settings.sse_keepalive_s:g} s")
    print(f"keep-alives while idle: {idle_comments} (at least {want} expected)")
    print(f"stream open after the idle time: {open_after_idle}")
    print(f"events after the worker ran the job: {names}")
    print("PASS" if ok else "FAIL")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="luma-sse-idle-") as tmp:
        return 0 if asyncio.run(run(args.idle_s, Path(tmp))) else 1


if __name__ == "__main__":
    sys.exit(main())
