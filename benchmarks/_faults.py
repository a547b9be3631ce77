"""The soak's fault injector: kills workers on a timer, and once each (at a share of the jobs
finished) kills the scheduler and a gang rank, rolls a version out and back, fills the
journal's disk, takes a webhook receiver down and makes another drip-feed."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _disk import fill, free
from _receivers import Receivers

ASK: dict[str, Any] = {"frames": 4, "size": "32x32", "steps": 2}
"""Every soak job: small, so a 2-core machine gets through a thousand in minutes."""


class Faults:
    """Injects faults on a thread while jobs run; counts what it did."""

    def __init__(
        self,
        client: Any,
        repo: Any,
        progress: Any,
        kill_every_s: float,
        windows: dict[str, float],
        disk: Path | None,
        receivers: Receivers,
    ) -> None:
        self.client, self.repo, self.progress = client, repo, progress
        self.kill_every_s = kill_every_s
        self.windows, self.disk, self.receivers = windows, disk, receivers
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

        once = {
            "scheduler": 0.3,
            "rank": 0.45,
            "rollout": 0.4,
            "disk_full": 0.15,  # while jobs still arrive
            "webhook_outage": 0.55,
            "slow_receiver": 0.6,
            "rollback": 0.7,
        }
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

    def _window(self, kind: str, start: Any, end: Any, what: str) -> None:
        """Start a fault now and end it ``--<kind>-for`` seconds later, on a timer."""
        start()
        self._note(kind, f"{what} for {self.windows[kind]:g} s")

        def over() -> None:
            end()
            self._note(f"{kind}_over", what)

        threading.Timer(self.windows[kind], over).start()

    def _disk_full(self, ray: Any) -> None:
        if self.disk is None:
            raise RuntimeError("the journal is on no small disk (mounting a tmpfs needs root)")
        disk = self.disk

        self._window("disk_full", lambda: fill(disk), lambda: free(disk), "journal disk full")

    def _webhook_outage(self, ray: Any) -> None:
        down = self.receivers.down
        self._window("webhook_outage", down.set, down.clear, "outage receiver answers 503")

    def _slow_receiver(self, ray: Any) -> None:
        slow = self.receivers.slow
        self._window("slow_receiver", slow.set, slow.clear, "slow receiver drip-feeds")

    def _rollback(self, ray: Any) -> None:
        self.repo.rollback("luma-tiny")
        self._note("rollback", "luma-tiny v2 -> v1")
