"""Pick cost against queue depth: the head-only pick vs a naive full scan, with and without
fair share.

Fair share (the default): 10k tenants, a capped flooding tenant holding the oldest 30 % of the
jobs and 5 % of the other tenants capped (their cap moves every fourth pick); the fair-share
pick against the FIFO-in-tier pick, which scans past capped tenants' jobs.

Without tenants: fills a QueueBook with N queued jobs over 5 tiers x 2 models (enqueue times
spread over the last 10 hours, so every band of every policy is populated), then times picks
that take a job and push a fresh one (depth stays N). The naive pick ranks every queued job,
as a scheduler
without the band argument would. Both run in this process, on this machine, in one run.

    python benchmarks/pick_cost.py [--depths 1000,10000,100000,1000000] [--section all]
                                   [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import DEFAULT_POLICY, POLICIES, make_policy
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


# ---- fair share: 10k tenants, some of them capped --------------------------------------


def fill_tenants(depth: int, fair_share: bool, tenants: int = 10_000, seed: int = 0):
    """A book of ``depth`` jobs over ``tenants`` tenants (Zipf-like sizes, each tenant in one
    tier), where a flooding free tenant holds the oldest 30 % of the jobs and is at its
    ``max_leased`` cap, as are 5 % of the other tenants."""
    rng = random.Random(seed)
    tiers = list(SPECS)
    names = [f"t{k}" for k in range(tenants)]
    tier_of = {n: rng.choices(tiers, [4, 4, 12, 25, 55])[0] for n in names}
    tier_of["flood"] = "free"
    sizes = [1.0 / (k + 1) ** 0.8 for k in range(tenants)]
    n_flood = int(depth * 0.3)
    # The flood came first: its jobs are the oldest of all, ahead of everyone's in the queue.
    rows = [(rng.uniform(0, 600.0), "flood", rng.choice(MODELS)) for _ in range(n_flood)]
    others = rng.choices(names, sizes, k=depth - n_flood)
    rows += [(rng.uniform(600.0, HORIZON_S), who, rng.choice(MODELS)) for who in others]
    rows.sort()
    capped = rng.sample(names, tenants // 20)
    book = QueueBook(SPECS, fair_share=fair_share)
    for name in [*capped, "flood"]:
        book.set_capped(tier_of[name], name, True)
    tenant_of: dict[int, str] = {}
    for seq, (t, who, model) in enumerate(rows):
        book.push(tier_of[who], model, t, seq, who, 1.0)
        tenant_of[seq] = who
    return book, capped, names, tier_of, tenant_of


class TenantRun:
    """One filled book and the state to keep picking from it: each pick is followed by a push
    (depth stays put) and, every fourth pick, by one capped tenant dropping below its cap and
    another tenant reaching it."""

    def __init__(self, depth: int, fair_share: bool, seed: int = 0) -> None:
        self.depth, self.fair_share, self.seed = depth, fair_share, seed
        self.fill()

    def fill(self) -> None:
        depth, fair_share, seed = self.depth, self.fair_share, self.seed
        self.book, self.capped, self.names, self.tier_of, self.tenant_of = fill_tenants(
            depth, fair_share, seed=seed
        )
        self.is_capped = {*self.capped, "flood"}
        self.rng = random.Random(seed + 1)
        self.policy = make_policy(DEFAULT_POLICY)
        for seq in sorted(self.tenant_of):  # the default's shadows see every queued job arrive
            self.policy.on_arrival(SPECS[self.tier_of[self.tenant_of[seq]]], 0.0)
        tenant_of, is_capped = self.tenant_of, self.is_capped
        self.eligible = None if fair_share else (lambda tier, seq: tenant_of[seq] not in is_capped)
        self.now = HORIZON_S
        self.next_seq = depth
        self.k = 0

    def time(self, picks: int) -> float:
        """Seconds per pick over ``picks`` picks. A book that has had more than a quarter of
        its depth picked is filled afresh first (untimed), so that its mix of young and old
        jobs stays that of the fill at every depth."""
        if self.k + picks > max(self.depth // 4, picks):
            self.seed += 1
            self.fill()
        book, rng, names, tier_of, capped = (
            self.book,
            self.rng,
            self.names,
            self.tier_of,
            self.capped,
        )
        started = time.perf_counter()
        for _ in range(picks):
            self.now += 0.01
            pick = book.pick(self.policy, MODELS, self.now, self.eligible)
            assert pick is not None
            who = rng.choice(names)
            book.push(tier_of[who], pick.model, self.now, self.next_seq, who, 1.0)
            self.policy.on_arrival(SPECS[tier_of[who]], self.now)
            self.tenant_of[self.next_seq] = who
            self.next_seq += 1
            self.k += 1
            if self.k % 4 == 0:
                j, new = rng.randrange(len(capped)), rng.choice(names)
                if new not in self.is_capped:
                    old, capped[j] = capped[j], new
                    self.is_capped.discard(old)
                    self.is_capped.add(new)
                    book.set_capped(tier_of[old], old, False)
                    book.set_capped(tier_of[new], new, True)
        return (time.perf_counter() - started) / picks


def main_tenants(depths: list[int], picks: int, rounds: int = 20) -> list[dict]:
    """Fair-share pick cost per depth: every depth's book is built first, then the depths
    take turns, ``rounds`` rounds of ``picks / rounds`` picks each, and each depth reports its
    fastest round (the flatness over depths), so that load from other processes on a shared
    machine hits every depth alike, and its mean over every round. The FIFO pick with its cap
    scan is timed after, on fewer picks, as one mean: the ratio between them is taken on the
    means."""
    print("\nfair share, 10k tenants, a capped flood holding the oldest 30 % and 5 % of tenants")
    print(
        f"capped ({DEFAULT_POLICY}, the default, fair share with its default lag); against the"
        " FIFO-in-tier pick that scans past capped jobs"
    )
    runs = {depth: TenantRun(depth, True) for depth in depths}
    fair = {depth: float("inf") for depth in depths}
    total = dict.fromkeys(depths, 0.0)
    for _ in range(rounds):
        for depth, run in runs.items():
            took = run.time(max(1, picks // rounds))
            fair[depth] = min(fair[depth], took)
            total[depth] += took / rounds
    del runs
    results = []
    for depth in depths:
        fifo = TenantRun(depth, False).time(max(3, min(picks, 2_000_000 // depth)))
        results.append(
            {
                "depth": depth,
                "fair_share_us": fair[depth] * 1e6,
                "fair_share_mean_us": total[depth] * 1e6,
                "fifo_scan_us": fifo * 1e6,
            }
        )
        print(
            f"depth {depth:>9,}  fair share {fair[depth] * 1e6:8.1f} us (mean "
            f"{total[depth] * 1e6:8.1f})   FIFO with cap scan {fifo * 1e6:12.0f} us   "
            f"x{fifo / total[depth]:,.0f} (means)",
            flush=True,
        )
    costs = [r["fair_share_us"] for r in results]
    print(f"flatness: fair-share cost max / min over depths {max(costs) / min(costs):.2f}x")
    means = [r["fair_share_mean_us"] for r in results]
    print(f"flatness of the means: max / min over depths {max(means) / min(means):.2f}x")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="1000,10000,100000,1000000")
    parser.add_argument("--policies", default=",".join(sorted(POLICIES)))
    parser.add_argument("--picks", type=int, default=20_000)
    parser.add_argument(
        "--section", choices=["fifo", "tenants", "all"], default="all", help="which tables"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    policies = args.policies.split(",")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python "
        f"{platform.python_version()}"
    )
    results: list[dict] = []
    if args.section != "fifo":
        results += main_tenants(depths, args.picks)
    if args.section == "tenants":
        depths = []
    else:
        print("\nFIFO queues per (tier, model), no tenants: head-only against a full scan")
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
    if depths:
        print("\nflatness: head-only cost at the largest depth / at the smallest")
    for name in policies if depths else []:
        small = next(r for r in results if r.get("policy") == name and r["depth"] == depths[0])
        large = next(r for r in results if r.get("policy") == name and r["depth"] == depths[-1])
        print(f"  {name:<10} {large['head_only_us'] / small['head_only_us']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
