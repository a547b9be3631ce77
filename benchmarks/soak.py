"""Fault-injection soak: many jobs across every tier while workers, the scheduler and a gang
rank are killed and a rollout and a rollback run; then check that nothing was lost or done
twice.

A local cluster serves ``luma-tiny`` (3 replicas, rolled v1 → v2 → back to v1 mid-run) and
``tiny-gang`` (one 2-rank gloo gang). Jobs are small (4 frames, 32x32, 2 steps) so a 2-core
machine gets through them in minutes. Faults: a random luma-tiny replica killed every
``--kill-every`` seconds, the scheduler actor killed once (Ray restarts it from its journal),
rank 1 of the gang killed once. At the end every accepted job must be final, none missing,
each committed at most once (the journal's history), and the report counts each fault.

    cd benchmarks && python soak.py [--jobs 1000] [--markdown ../docs/soak.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _cluster import local_ray

TIERS = ["api", "enterprise", "unlimited", "light", "free"]
ASK: dict[str, Any] = {"frames": 4, "size": "32x32", "steps": 2}


def publish_gang_model(repo: Any, root: Path) -> None:
    """tiny-gang@v1: the reference weights under another name (before the system starts)."""
    from dataclasses import asdict

    from luma_ray.models.reference.model import LIMITS
    from luma_ray.models.reference.publish import write_reference_folder

    gang = write_reference_folder(root / "gang-v1", limits=asdict(LIMITS))
    repo.publish("tiny-gang", "v1", gang)
    repo.promote("tiny-gang", "v1")


def publish_v2(repo: Any, root: Path) -> None:
    """luma-tiny@v2, with its own code (after the first start published v1)."""
    from luma_ray.models.reference.publish import write_reference_folder

    v2 = write_reference_folder(root / "tiny-v2", entrypoint="tiny_v2:Model")
    (v2 / "code" / "tiny_v2").mkdir(parents=True)
    (v2 / "code" / "tiny_v2" / "__init__.py").write_text(
        "from luma_ray.models.reference.model import LumaTiny\n\n\nclass Model(LumaTiny):\n"
        "    pass\n"
    )
    repo.publish("luma-tiny", "v2", v2)


class Faults:
    """Injects faults on a thread while jobs run; counts what it did."""

    def __init__(self, client: Any, repo: Any, progress: Any, kill_every_s: float) -> None:
        self.client, self.repo, self.progress = client, repo, progress
        self.kill_every_s = kill_every_s
        self.counts: Counter[str] = Counter()
        self.log: list[str] = []
        self.errors: list[str] = []  # injections that could not be carried out
        self._stop = threading.Event()
        self._rng = random.Random(7)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _note(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        self.log.append(f"{time.strftime('%H:%M:%S')} {kind}: {what}")
        print(self.log[-1], flush=True)

    def _run(self) -> None:
        import ray

        once = {"scheduler": 0.3, "rank": 0.45, "rollout": 0.4, "rollback": 0.7}
        next_kill = time.monotonic() + self.kill_every_s
        while not self._stop.wait(0.5):  # the injector's pace, not synchronisation
            done = self.progress()
            for kind, at in list(once.items()):
                if done >= at:
                    del once[kind]
                    try:
                        getattr(self, f"_{kind}")(ray)
                    except Exception as err:  # a failed injection is reported, not fatal
                        self.errors.append(f"{kind}: {err!r}")
            if time.monotonic() >= next_kill and done < 0.9:
                next_kill = time.monotonic() + self.kill_every_s
                try:
                    self._worker(ray)
                except Exception as err:
                    self.errors.append(f"worker: {err!r}")

    def _worker(self, ray: Any) -> None:
        replicas = [
            a
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::luma-tiny-workers#")
        ]
        if replicas:
            victim = self._rng.choice(replicas)
            ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
            self._note("worker_killed", victim["name"].rsplit("#", 1)[-1])

    def _scheduler(self, ray: Any) -> None:
        from luma_ray.runtime.handle import get_scheduler

        ray.kill(get_scheduler().actor, no_restart=False)  # Ray restarts it; it reloads the journal
        self._note("scheduler_killed", "luma-scheduler")

    def _rank(self, ray: Any) -> None:
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if "/tiny-gang-workers/" in a["name"] and a["name"].endswith("rank1")
        ]
        if names:
            namespace = next(
                a["namespace"]
                for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"] == names[0]
            )
            ray.kill(ray.get_actor(names[0], namespace=namespace), no_restart=True)
            self._note("rank_killed", names[0])

    def _rollout(self, ray: Any) -> None:
        self.repo.promote("luma-tiny", "v2", max_unavailable="1")
        self._note("rollout", "luma-tiny v1 -> v2")

    def _rollback(self, ray: Any) -> None:
        self.repo.rollback("luma-tiny")
        self._note("rollback", "luma-tiny v2 -> v1")


def final_ids(client: Any) -> set[str]:
    """Ids of every final job, read page by page (the handle waits out a restarting
    scheduler: its journal brings it back)."""
    from luma_ray.scheduler.protocol import ListJobs

    done: set[str] = set()
    after = None
    while True:
        views = client.scheduler.call(ListJobs(None, None, 1000, after, "asc"))
        done |= {v.id for v in views if v.done}
        if len(views) < 1000:
            return done
        after = views[-1].id


def journal_check(journal: str, ids: list[str]) -> dict[str, Any]:
    """Read the journal file directly: every id present and final, committed at most once."""
    db = sqlite3.connect(journal)
    try:
        rows = dict(db.execute("SELECT id, record FROM jobs").fetchall())
    finally:
        db.close()
    missing = [i for i in ids if i not in rows]
    states: Counter[str] = Counter()
    twice, attempts, versions = [], Counter(), Counter()
    for job_id in ids:
        if job_id not in rows:
            continue
        record = json.loads(rows[job_id])
        states[record["state"]] += 1
        commits = sum(1 for h in record["history"] if h[1] == "succeeded")
        if commits > 1:
            twice.append(job_id)
        attempts[record["attempts"]] += 1
        versions[f"{record['model']}@{record.get('model_version')}"] += 1
    return {
        "missing": missing,
        "states": dict(states),
        "committed_twice": twice,
        "attempts": dict(sorted(attempts.items())),
        "versions": dict(versions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds between kills")
    parser.add_argument("--markdown", help="write the report here")
    args = parser.parse_args()

    import luma_ray
    from luma_ray.config import PoolConfig, RuntimeConfig, SchedulerConfig
    from luma_ray.models.repository import ModelRepository
    from luma_ray.storage import open_store

    started = time.time()
    with local_ray(num_cpus=6) as root:
        runtime = RuntimeConfig(
            data_dir=str(root / "data"),
            http_host=None,
            scheduler=SchedulerConfig(lease_ttl_s=6, max_attempts=5),
            pools=[
                PoolConfig(replicas=3, num_cpus=1, watch_interval_s=1),
                PoolConfig(model="tiny-gang", accelerators=2, num_cpus=0.5, cluster="gang"),
            ],
        )
        repo = ModelRepository(open_store(runtime.repository), time.time)
        publish_gang_model(repo, root / "versions")
        client = luma_ray.connect(runtime=runtime, quiet=True)
        publish_v2(repo, root / "versions")
        rng = random.Random(1)
        ids: list[str] = []
        final = {"succeeded", "failed", "cancelled"}
        finished: set[str] = set()

        def progress() -> float:
            return len(finished) / args.jobs

        faults = Faults(client, repo, progress, args.kill_every)
        faults.start()
        batch = 25
        for first in range(0, args.jobs, batch):
            for i in range(first, min(first + batch, args.jobs)):
                model = "tiny-gang" if i % 10 == 0 else "luma-tiny"
                ids.append(
                    client.submit(f"soak {i}", model=model, tier=rng.choice(TIERS), seed=i, **ASK)
                )
            time.sleep(1.0)  # the arrival pace of the load, not synchronisation
            finished = final_ids(client) & set(ids)
        deadline = time.monotonic() + 1800
        while len(finished) < len(ids) and time.monotonic() < deadline:
            time.sleep(2.0)  # polling for the end of the run
            finished = final_ids(client) & set(ids)
        faults.stop()
        check = journal_check(runtime.journal, ids)
    wall = time.time() - started
    ok = (
        not faults.errors
        and not check["missing"]
        and not check["committed_twice"]
        and sum(check["states"].values()) == len(ids)
        and all(s in final for s in check["states"])
    )
    lines = [
        "# Fault-injection soak",
        "",
        f"Command: `cd benchmarks && python soak.py --jobs {args.jobs}"
        f" --kill-every {args.kill_every:g}`",
        "",
        f"Machine: {platform.machine()}, 2 cores, CPU only, Python {platform.python_version()};"
        f" {wall:.0f} s wall.",
        "",
        f"- jobs accepted: {len(ids)} (every tier; 1 in 10 on the 2-rank gang)",
        f"- final states (journal): {check['states']}",
        f"- missing from the journal: {len(check['missing'])}; committed twice:"
        f" {len(check['committed_twice'])}",
        f"- attempts per job: {check['attempts']}",
        f"- model versions that made them: {check['versions']}",
        f"- faults injected: {dict(faults.counts)}",
        f"- injections that failed: {faults.errors or 'none'}",
        f"- verdict: {'PASS' if ok else 'FAIL'}",
        "",
        "Fault log:",
        "",
        *[f"    {line}" for line in faults.log],
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
