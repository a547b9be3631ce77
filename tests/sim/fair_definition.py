"""The fair-share pick, written out over every queued job: the definition that
:meth:`QueueBook.pick` with fair share must equal (tests/sim/test_pick_equivalence.py) and that
the simulator's fair-share replay must follow (tests/sim/test_simulate.py).

No heaps, no sub-queues: per tier, each tenant has one virtual time (its account, shared by
the tier's model lanes), and per lane (tier, model) a stamp. A tenant that gets a queued job
while it has none in the tier is lifted to max(own vtime, least vtime of the tier's tenants
with queued jobs, or the tier's floor when there are none); one that gets a queued job while it
has none in the lane is stamped there. A dispatch adds cost / weight to the account and stamps
the tenant in its lane and in every other lane of the tier where it has queued jobs; a tenant
left with no queued job in the tier raises the tier's floor to its vtime. A pick takes the
argmax by (rank, older, lower seq) over (a) per lane, the
band-0 job of an uncapped tenant that is least by (vtime, stamp, -rank, enqueue time, seq),
and (b) every queued job of an uncapped tenant in a band >= 1. With a lag (``lag_jobs`` > 0),
(a) is first the lane's oldest band-0 job by (enqueue time, seq), capped tenants' included,
when its tenant is uncapped and its vtime is at most the least vtime of the lane's tenants with
queued jobs plus ``lag_jobs`` times the mean cost of every push the lane has had.

A flood: when a lane's oldest job of an uncapped tenant is in a band >= 1 and its tenant holds
more than ``flood_share`` of the lane's queued jobs (capped tenants' included) and is past the
lag, none of the lane's band >= 1 jobs enters (b); the lane instead offers one job under the key
(that oldest job's rank, -enqueue time, -seq of the job offered): the lane's (a) when its tenant
is another, else the oldest job itself. That offer is dropped when the pick has an (a) in a tier
of greater weight.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import Policy
from luma_ray.scheduler.queues import band_of
from luma_ray.scheduler.shares import DEFAULT_FLOOD_SHARE, DEFAULT_LAG_JOBS
from luma_ray.scheduler.tiers import tier_specs

TIERS = tier_specs(default_tiers())


@dataclass
class FairEntry:
    tier: str
    model: str
    tenant: str
    enqueued_at_s: float
    seq: int
    cost: float


@dataclass
class Definition:
    policy: Policy
    weights: dict[str, float]
    caps: dict[str, int]
    queued: dict[int, FairEntry] = field(default_factory=dict)
    vtime: dict[tuple[str, str], float] = field(default_factory=dict)
    """Per (tier, tenant): one account, shared by the tier's model lanes."""
    stamp: dict[tuple[str, str, str], int] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    """Per tier."""
    clock: dict[tuple[str, str], int] = field(default_factory=dict)
    leased: Counter = field(default_factory=Counter)
    tiers: dict = field(default_factory=lambda: TIERS)
    lag_jobs: float = DEFAULT_LAG_JOBS
    flood_share: float = DEFAULT_FLOOD_SHARE
    pushed: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """Per lane: [sum of pushed costs, number of pushes]."""
    seen: Counter = field(default_factory=Counter)
    """Fair-share states met: lifts, vtime ties, parked tenants passed over."""

    def has_queued(self, tier: str, model: str | None, tenant: str) -> bool:
        """Whether ``tenant`` has a queued job in the lane (in the tier: ``model`` None)."""
        return any(
            (e.tier, e.tenant) == (tier, tenant) and model in (None, e.model)
            for e in self.queued.values()
        )

    def _stamp(self, key: tuple[str, str, str]) -> None:
        lane = key[:2]
        self.clock[lane] = self.clock.get(lane, 0) + 1
        self.stamp[key] = self.clock[lane]

    def push(self, e: FairEntry) -> None:
        account = (e.tier, e.tenant)
        if not self.has_queued(e.tier, None, e.tenant):
            others = {
                self.vtime[(o.tier, o.tenant)] for o in self.queued.values() if o.tier == e.tier
            }
            least = min(others) if others else self.floor.get(e.tier, 0.0)
            if least > self.vtime.get(account, 0.0):
                self.seen["lift"] += 1
            self.vtime[account] = max(self.vtime.get(account, 0.0), least)
        if not self.has_queued(e.tier, e.model, e.tenant):
            self._stamp((e.tier, e.model, e.tenant))
        self.queued[e.seq] = e
        sums = self.pushed.setdefault((e.tier, e.model), [0.0, 0])
        sums[0] += e.cost
        sums[1] += 1

    def _left(self, e: FairEntry) -> None:
        if not self.has_queued(e.tier, None, e.tenant):
            self.floor[e.tier] = max(self.floor.get(e.tier, 0.0), self.vtime[(e.tier, e.tenant)])

    def dispatch(self, e: FairEntry) -> None:
        del self.queued[e.seq]
        self.vtime[(e.tier, e.tenant)] += e.cost / self.weights.get(e.tenant, 1.0)
        # the charge shows in every lane of the tier where the tenant has queued jobs
        for model in sorted(
            {o.model for o in self.queued.values() if (o.tier, o.tenant) == (e.tier, e.tenant)}
            - {e.model}
        ):
            self.seen["charge_elsewhere"] += 1
            self._stamp((e.tier, model, e.tenant))
        self._stamp((e.tier, e.model, e.tenant))
        self._left(e)

    def cancel(self, e: FairEntry) -> None:
        del self.queued[e.seq]
        self._left(e)

    def capped(self, tier: str, tenant: str) -> bool:
        cap = self.caps.get(tier)
        return cap is not None and self.leased[(tier, tenant)] >= cap

    def pick(self, models: set[str], now_s: float) -> tuple[int, int] | None:
        """(seq, band) of the job the definition picks, or None."""
        p = self.policy
        best: tuple | None = None
        best_at: tuple[int, int] | None = None
        fair: dict[tuple[str, str], tuple] = {}
        aged: dict[tuple[str, str], list[tuple[tuple, FairEntry, int]]] = {}
        for e in self.queued.values():
            if e.model not in models:
                continue
            if self.capped(e.tier, e.tenant):
                self.seen["parked"] += 1
                continue
            tier = self.tiers[e.tier]
            band = band_of(p.bands(tier), e.enqueued_at_s, now_s)
            r = p.rank(tier, band, now_s - e.enqueued_at_s)
            if band == 0:
                key3 = (e.tier, e.model, e.tenant)
                order = (
                    self.vtime[(e.tier, e.tenant)],
                    self.stamp[key3],
                    -r,
                    e.enqueued_at_s,
                    e.seq,
                )
                lane = (e.tier, e.model)
                held = fair.get(lane)
                if held is not None and held[0][0] == order[0] and held[2] != e.tenant:
                    self.seen["vtime_tie"] += 1
                if held is None or order < held[0]:
                    fair[lane] = (order, (r, -e.enqueued_at_s, -e.seq), e.tenant, band)
                continue
            aged.setdefault((e.tier, e.model), []).append(((r, -e.enqueued_at_s, -e.seq), e, band))
        for lane, found in self._lag_candidates(models, now_s).items():
            fair[lane] = found
        offers = [(key, band) for _order, key, _tenant, band in fair.values()]
        heaviest = max((self.tiers[lane[0]].weight for lane in fair), default=-1.0)
        for lane, jobs in aged.items():
            oldest = min(jobs, key=lambda j: (j[1].enqueued_at_s, j[1].seq))
            if not self._floods(oldest[1]):
                offers += [(key, band) for key, _e, band in jobs]
                continue
            other = lane in fair and fair[lane][2] != oldest[1].tenant
            key, band = (fair[lane][1], 0) if other else (oldest[0], oldest[2])
            self.seen["flood_" + ("other" if other else "self")] += 1
            if self.tiers[lane[0]].weight < heaviest:
                self.seen["flood_held_back"] += 1
                continue
            offers.append(((oldest[0][0], key[1], key[2]), band))
        for key, band in offers:
            if best is None or key > best:
                best, best_at = key, (-key[2], band)
        return best_at

    def _floods(self, e: FairEntry) -> bool:
        """True when ``e``'s tenant holds more than ``flood_share`` of its lane's queued jobs
        and is past the lag."""
        lane = [o for o in self.queued.values() if (o.tier, o.model) == (e.tier, e.model)]
        own = sum(o.tenant == e.tenant for o in lane)
        if self.lag_jobs <= 0 or own <= self.flood_share * len(lane):
            return False
        least = min(self.vtime[(o.tier, o.tenant)] for o in lane)
        total, n = self.pushed[(e.tier, e.model)]
        return self.vtime[(e.tier, e.tenant)] > least + self.lag_jobs * total / max(n, 1)

    def _lag_candidates(self, models: set[str], now_s: float) -> dict[tuple[str, str], tuple]:
        """Per lane, the oldest band-0 job when its tenant is within the lag (replaces the
        fair-share candidate of that lane)."""
        if self.lag_jobs <= 0:
            return {}
        oldest: dict[tuple[str, str], FairEntry] = {}
        least: dict[tuple[str, str], float] = {}
        for e in self.queued.values():
            lane = (e.tier, e.model)
            v = self.vtime[(e.tier, e.tenant)]
            least[lane] = min(least.get(lane, v), v)
            if e.model not in models:
                continue
            tier = self.tiers[e.tier]
            if band_of(self.policy.bands(tier), e.enqueued_at_s, now_s) != 0:
                continue
            held = oldest.get(lane)
            if held is None or (e.enqueued_at_s, e.seq) < (held.enqueued_at_s, held.seq):
                oldest[lane] = e
        out = {}
        for lane, e in oldest.items():
            total, n = self.pushed[lane]
            lag = self.lag_jobs * total / max(n, 1)
            if self.capped(e.tier, e.tenant):
                continue
            if self.vtime[(e.tier, e.tenant)] > least[lane] + lag:
                self.seen["past_lag"] += 1
                continue
            self.seen["within_lag"] += 1
            r = self.policy.rank(self.tiers[e.tier], 0, now_s - e.enqueued_at_s)
            out[lane] = (None, (r, -e.enqueued_at_s, -e.seq), e.tenant, 0)
        return out
