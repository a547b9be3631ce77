"""Pick cost against queue depth: the head-only pick vs a naive full scan.

Fills a QueueBook with N queued jobs over 5 tiers x 2 models (enqueue times spread over the
last 10 hours, so every band of every policy is populated), then times picks that take a job
and push a fresh one (depth stays N). The naive pick ranks every queued job, as a scheduler
without the band argument would. Both run in this process, on this machine, in one run.

    python benchmarks/pick_cost.py [--depths 1000,10000,100000,1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import POLICIES, make_policy
from luma_ray.scheduler.queues import QueueBook, band_of
from luma_ray.scheduler.tiers import tier_specs

SPECS = tier_specs(default_tiers())
MODELS = ["video-std", "video-hd"]
HORIZON_S = 10 * 3600.0


def fill(depth: int, seed: int = 0) -> tuple[QueueBook, list[tuple[str, str, float, int]]]:
    rng = random.Random(seed)
    tiers = list(SPECS)
    rows = sorted(
        (rng.uniform(0, HORIZON_S), rng.choices(tiers, [4, 4, 12, 25, 55])[0], rng.choice(MODELS))
        for _ in range(depth)
    )
    book = QueueBook(SPECS)
    entries = []
    for seq, (t, tier, model) in enumerate(rows):
        book.push(tier, model, t, seq)
        entries.append((tier, model, t, seq))
    return book, entries


def time_head_only(book: QueueBook, policy_name: str, picks: int, next_seq: int) -> float:
    policy = make_policy(policy_name)
    now = HORIZON_S
    started = time.perf_counter()
    for k in range(picks):
        now += 0.01
        pick = book.pick(policy, MODELS, now)
        assert pick is not None
        book.push(pick.tier, pick.model, now, next_seq + k)
    return (time.perf_counter() - started) / picks


def naive_pick(entries: list[tuple[str, str, float, int]], policy, now: float) -> int:
    """Rank every queued job; the argmax wins (the full scan we compare against)."""
    best, best_i = None, -1
    for i, (tier_name, _model, t, seq) in enumerate(entries):
        tier = SPECS[tier_name]
        key = (policy.rank(tier, band_of(policy.bands(tier), t, now), now - t), -t, -seq)
        if best is None or key > best:
            best, best_i = key, i
    return best_i


def time_naive(entries, policy_name: str, picks: int) -> float:
    policy = make_policy(policy_name)
    started = time.perf_counter()
    for k in range(picks):
        naive_pick(entries, policy, HORIZON_S + k * 0.01)
    return (time.perf_counter() - started) / picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="1000,10000,100000,1000000")
    parser.add_argument("--policies", default=",".join(sorted(POLICIES)))
    parser.add_argument("--picks", type=int, default=20_000)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    policies = args.policies.split(",")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python "
        f"{platform.python_version()}"
    )
    results = []
    for depth in depths:
        for name in policies:
            book, entries = fill(depth)
            head = time_head_only(book, name, args.picks, depth)
            naive = time_naive(entries, name, 3 if depth >= 100_000 else 20)
            results.append(
                {
                    "depth": depth,
                    "policy": name,
                    "head_only_us": head * 1e6,
                    "full_scan_us": naive * 1e6,
                    "speedup": naive / head,
                }
            )
            print(
                f"depth {depth:>9,}  {name:<10} head-only {head * 1e6:8.1f} us   "
                f"full scan {naive * 1e6:12.0f} us   x{naive / head:,.0f}",
                flush=True,
            )
    print("\nflatness: head-only cost at the largest depth / at the smallest")
    for name in policies:
        small = next(r for r in results if r["policy"] == name and r["depth"] == depths[0])
        large = next(r for r in results if r["policy"] == name and r["depth"] == depths[-1])
        print(f"  {name:<10} {large['head_only_us'] / small['head_only_us']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
