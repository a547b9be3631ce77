"""A flood through the live scheduler's core: issue 13's flood test, in the dispatch simulator.

The GenTD26 replay (speedup 50, 25 slots, its 87 models) with one free tenant added at
``--factor`` times the free tier's volume (``add_flood``), replayed through the real
``SchedulerCore`` (luma_ray.sim.dispatch_sim): one cluster of 25 slots, ``--latency`` seconds
from lease to start, each worker pulling ``--lead`` seconds before its job ends. Reports api's
attainment and the other free tenants' attainment against what they get on the same replay
without the flood, with flood containment (the default) and without it
(``fair_share_flood_share: 1``). Targets (issue 13): api >= 0.98, others >= 0.8x.

    python benchmarks/flood_dispatch.py [--factor 10] [--flood-seed 0] [--latency 2] [--lead 2]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from luma_ray.config import default_tiers
from luma_ray.scheduler.tiers import tier_specs
from luma_ray.sim.dispatch_replay import Replay
from luma_ray.sim.dispatch_sim import ClusterSpec, scheduler_config
from luma_ray.sim.traces import write_gentd26
from luma_ray.sim.traces.flood import add_flood
from luma_ray.sim.traces.flood import attainment as flood_attainment
from luma_ray.sim.traces.reader import Trace, read_trace

SPECS = tier_specs(default_tiers())


def attainment(trace: Trace, start: list[float], tier: str, skip_tenant: str = "") -> float:
    return flood_attainment(trace, start, tier, SPECS[tier].max_wait_s, skip_tenant)


def replay(trace: Trace, latency_s: float, lead_s: float, flood_share: float) -> list[float]:
    """Start times of every job, replayed through the scheduler core."""
    clusters = [ClusterSpec("local", 25, None, latency_s)]
    config = scheduler_config(clusters).model_copy(update={"fair_share_flood_share": flood_share})
    run = Replay(trace, clusters, config, 1.0, lead_s)
    run.run(None)
    return run.start_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=10.0, help="the flood's volume, x free")
    parser.add_argument("--flood-seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=2.0, help="lease to start, seconds")
    parser.add_argument("--lead", type=float, default=2.0, help="prefetch lead, seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        write_gentd26(folder, speedup=50.0, slots=25)
        trace = read_trace(Path(folder) / "trace.csv", list(SPECS))
    seed = args.flood_seed
    flooded = add_flood(trace, tier="free", factor=args.factor, tenant="flood", seed=seed)
    print(
        f"Machine: {platform.machine()}, Python {platform.python_version()}. GenTD26 x50, "
        f"25 slots, {len(set(trace.model))} models; flood: free x{args.factor:g} (seed {seed}); "
        f"pull latency {args.latency:g} s, prefetch {args.lead:g} s before a job ends.\n"
    )
    began = time.perf_counter()
    base = replay(trace, args.latency, args.lead, 0.7)
    before = attainment(trace, base, "free")
    print("| flood containment | api | other free tenants | without the flood | ratio | verdict |")
    print("|---|---|---|---|---|---|")
    for label, share in (("on (default, 0.7)", 0.7), ("off (1)", 1.0)):
        start = replay(flooded, args.latency, args.lead, share)
        api = attainment(flooded, start, "api")
        others = attainment(flooded, start, "free", skip_tenant="flood")
        ok = api >= 0.98 and others >= 0.8 * before
        print(
            f"| {label} | {api:.3f} | {others:.3f} | {before:.3f} | {others / before:.2f}x "
            f"| {'PASS' if ok else 'FAIL'} |",
            flush=True,
        )
    print(f"\nTargets: api >= 0.98, others >= 0.8x. {time.perf_counter() - began:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
