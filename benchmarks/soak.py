"""Fault-injection soak: many jobs across every tier while workers, the scheduler and a gang
rank are killed, a rollout and a rollback run, the journal's disk fills up for a while, and
webhook receivers go down or turn slow; then check that nothing was lost or done twice.

A local cluster serves ``luma-tiny`` (3 replicas, rolled v1 → v2 → back to v1 mid-run) and
``tiny-gang`` (one 2-rank gloo gang). Jobs are small (4 frames, 32x32, 2 steps) so a 2-core
machine gets through them in minutes. Faults: a random luma-tiny replica killed every
``--kill-every`` seconds, the scheduler actor killed once (Ray restarts it from its journal),
rank 1 of the gang killed once, the journal's disk (a 64 MiB tmpfs; needs root) filled for
``--full-for`` seconds, the ``outage`` tenant's webhook receiver answering 503 for
``--outage-for`` seconds and the ``slow`` tenant's drip-feeding for ``--slow-for`` seconds. At the
end every accepted job must be final, none missing, each committed at most once (the journal's
history), and every webhook event the journal implies delivered to its receiver; the report
counts each fault.

    cd benchmarks && python soak.py [--jobs 1000] [--markdown ../docs/soak.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _cluster import local_ray
from _disk import small_disk
from _faults import ASK, Faults
from _receivers import TENANTS, Receivers

TIERS = ["api", "enterprise", "unlimited", "light", "free"]


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


def expected_events(journal: str, ids: list[str]) -> set[str]:
    """Every webhook event the journal implies: the submit (``<id>.0``), then one per state
    change but the lease (``<id>.<n>`` for the n-th entry of the job's history)."""
    db = sqlite3.connect(journal)
    try:
        rows = dict(db.execute("SELECT id, record FROM jobs").fetchall())
    finally:
        db.close()
    events: set[str] = set()
    for job_id in ids:
        if job_id in rows:
            history = json.loads(rows[job_id])["history"]
            events.add(f"{job_id}.0")
            events |= {f"{job_id}.{n}" for n, h in enumerate(history, 1) if h[1] != "leased"}
    return events


def submit_until_accepted(client: Any, i: int, tenant: str, url: str, refused: Counter[str]) -> str:
    """Submit job ``i``; while the journal's disk is full (503) wait and send it again."""
    from luma_ray.errors import Unavailable

    model = "tiny-gang" if i % 10 == 0 else "luma-tiny"
    tier = random.Random(i).choice(TIERS)
    while True:
        try:
            return str(
                client.submit(
                    f"soak {i}", model=model, tier=tier, seed=i, tenant=tenant,
                    callback_url=url, **ASK,
                )
            )  # fmt: skip
        except Unavailable as err:
            refused[err.code] += 1
            time.sleep(0.5)  # the client's back-off while the operator frees space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds between kills")
    parser.add_argument("--full-for", type=float, default=10.0, help="seconds the disk is full")
    parser.add_argument("--outage-for", type=float, default=20.0, help="receiver 503 seconds")
    parser.add_argument("--slow-for", type=float, default=20.0, help="receiver drip seconds")
    parser.add_argument("--markdown", help="write the report here")
    args = parser.parse_args()

    import luma_ray
    from luma_ray.config import PoolConfig, RuntimeConfig, SchedulerConfig, WebhookConfig
    from luma_ray.models.repository import ModelRepository
    from luma_ray.storage import open_store

    started = time.time()
    windows = {
        "disk_full": args.full_for,
        "webhook_outage": args.outage_for,
        "slow_receiver": args.slow_for,
    }
    with (
        local_ray(num_cpus=6) as root,
        Receivers() as receivers,
        small_disk(root / "journal-disk", 64) as no_disk,
    ):
        disk = None if no_disk else root / "journal-disk"
        runtime = RuntimeConfig(
            data_dir=str(root / "data"),
            journal_path=str((disk or root / "data") / "journal.sqlite"),
            http_host=None,
            allow_private_callbacks=True,  # the receivers listen on 127.0.0.1
            # Retries over about two minutes (instead of a day), attempts cut at 2 s.
            webhooks=WebhookConfig(
                retry_schedule_s=(1, 2, 4, 8, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10),
                attempt_timeout_s=2.0,
            ),
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
        ids: list[str] = []
        refused: Counter[str] = Counter()
        final = {"succeeded", "failed", "cancelled"}
        finished: set[str] = set()

        def progress() -> float:
            return len(finished) / args.jobs

        faults = Faults(client, repo, progress, args.kill_every, windows, disk, receivers)
        faults.start()
        batch = 25
        for first in range(0, args.jobs, batch):
            for i in range(first, min(first + batch, args.jobs)):
                tenant = TENANTS[i % len(TENANTS)]
                url = receivers.url(tenant)
                ids.append(submit_until_accepted(client, i, tenant, url, refused))
            time.sleep(1.0)  # the arrival pace of the load, not synchronisation
            finished = final_ids(client) & set(ids)
        deadline = time.monotonic() + 1800
        while len(finished) < len(ids) and time.monotonic() < deadline:
            time.sleep(2.0)  # polling for the end of the run
            finished = final_ids(client) & set(ids)
        faults.stop()
        check = journal_check(runtime.journal, ids)
        expected = expected_events(runtime.journal, ids)
        deadline = time.monotonic() + 300  # the last retries of the receivers' events
        while not expected <= receivers.delivered_ids() and time.monotonic() < deadline:
            time.sleep(2.0)  # polling for the last deliveries
        lost = expected - receivers.delivered_ids()
    wall = time.time() - started
    ok = (
        not faults.errors
        and not check["missing"]
        and not check["committed_twice"]
        and sum(check["states"].values()) == len(ids)
        and all(s in final for s in check["states"])
        and not lost
        # the full disk must have bitten: submits sent while it was full were refused (503)
        and (disk is None or refused["journal_unavailable"] > 0)
    )
    delivered = {t: len(v) for t, v in sorted(receivers.delivered.items())}
    lines = [
        "# Fault-injection soak",
        "",
        f"Command: `cd benchmarks && python soak.py --jobs {args.jobs}"
        f" --kill-every {args.kill_every:g} --full-for {args.full_for:g}"
        f" --outage-for {args.outage_for:g} --slow-for {args.slow_for:g}`",
        "",
        f"Machine: {platform.machine()}, 2 cores, CPU only, Python {platform.python_version()};"
        f" {wall:.0f} s wall.",
        "",
        f"- jobs accepted: {len(ids)} (every tier; 1 in 10 on the 2-rank gang; tenants"
        f" {', '.join(TENANTS)} in turn, each with its webhook receiver)",
        f"- final states (journal): {check['states']}",
        f"- missing from the journal: {len(check['missing'])}; committed twice:"
        f" {len(check['committed_twice'])}",
        f"- attempts per job: {check['attempts']}",
        f"- model versions that made them: {check['versions']}",
        f"- journal disk: {'a 64 MiB tmpfs' if not no_disk else f'not mounted ({no_disk})'};"
        f" submits refused while it was full (sent again): {dict(refused)}",
        f"- webhook events the journal implies: {len(expected)}; delivered by tenant:"
        f" {delivered}; lost: {len(lost)}",
        f"- receiver answers: 503 while down {dict(receivers.refused)}, drip-fed"
        f" {receivers.dripped}",
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
    if lost:
        print("lost events (first 20):", sorted(lost)[:20])
    if args.markdown:
        Path(args.markdown).write_text(report)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
