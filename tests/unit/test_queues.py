"""JobQueue: appends, requeue inserts by age, tombstones, compaction."""

from __future__ import annotations

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import make_policy
from luma_ray.scheduler.queues import JobQueue, QueueBook
from luma_ray.scheduler.tiers import tier_specs


def test_requeue_inserts_by_age_and_ties_by_seq() -> None:
    q = JobQueue()
    for seq, t in enumerate([1.0, 2.0, 3.0]):
        q.push(t, seq)
    q.push(2.0, -1)  # a requeued job, older seq, same enqueue time as seq 1
    q.push(0.5, 9)
    assert list(q.entries()) == [(0.5, 9), (1.0, 0), (2.0, -1), (2.0, 1), (3.0, 2)]
    assert len(q) == 5


def test_tombstones_are_skipped_and_dropped_at_the_head() -> None:
    q = JobQueue()
    for seq in range(10):
        q.push(float(seq), seq)
    for seq in (3, 4, 5, 0):
        i = q.find(float(seq), seq)
        assert i is not None
        q.remove_at(i)
    assert q.find(4.0, 4) is None
    assert [s for _, s in q.entries()] == [1, 2, 6, 7, 8, 9]
    assert q.first_younger_than(2.5) == 6 and q.seqs[6] == 6
    q.remove_at(q.first_live())
    q.remove_at(q.first_live())
    assert q.first_live() == 6  # the head jumped over the tombstones of 3, 4, 5
    assert len(q) == 4


def test_compaction_keeps_order_and_bounds_memory() -> None:
    q = JobQueue()
    for seq in range(20_000):
        q.push(float(seq), seq)
    for _ in range(15_000):
        q.remove_at(q.first_live())
    assert len(q.times) < 20_000  # the consumed head was dropped
    assert [s for _, s in q.entries()][:3] == [15_000, 15_001, 15_002]


def test_book_pick_prefers_higher_rank_then_age() -> None:
    book = QueueBook(tier_specs(default_tiers()))
    book.push("free", "m", 0.0, 0)
    book.push("api", "m", 100.0, 1)
    pick = book.pick(make_policy("strict"), ["m"], 200.0)
    assert pick is not None and (pick.tier, pick.seq, pick.wait_s) == ("api", 1, 100.0)
    pick = book.pick(make_policy("fifo"), ["m"], 200.0, take=False)
    assert pick is not None and pick.seq == 0
    assert len(book) == 1


def test_ties_across_queues_go_to_the_earlier_submission() -> None:
    book = QueueBook(tier_specs(default_tiers()))
    book.push("free", "b", 0.0, 5)  # queue b exists first and is scanned first
    book.push("free", "a", 0.0, 3)
    pick = book.pick(make_policy("fifo"), ["b", "a"], 10.0)
    assert pick is not None and (pick.model, pick.seq) == ("a", 3)


def test_fair_share_an_idle_tenant_banks_no_credit() -> None:
    book = QueueBook(tier_specs(default_tiers()), fair_share=True, lag_jobs=0)
    fifo = make_policy("fifo")
    for seq in range(5):  # a runs alone: its virtual time reaches 5, then its queue empties
        book.push("free", "m", float(seq), seq, "a")
    assert [book.pick(fifo, ["m"], 5.0).tenant for _ in range(5)] == ["a"] * 5  # type: ignore[union-attr]
    for seq in range(5, 8):  # b never ran, but starts level with what a had, not 5 behind
        book.push("free", "m", 5.0 + seq, seq, "b")
    for seq in range(8, 11):
        book.push("free", "m", 5.0 + seq, seq, "a")
    got = [book.pick(fifo, ["m"], 20.0).tenant for _ in range(6)]  # type: ignore[union-attr]
    assert got == ["b", "a", "b", "a", "b", "a"]


def test_fair_share_views_count_parked_tenants() -> None:
    book = QueueBook(tier_specs(default_tiers()), fair_share=True)
    book.push("free", "m", 1.0, 0, "a")
    book.push("free", "m", 2.0, 1, "a")
    book.push("free", "m", 3.0, 2, "b")
    book.set_capped("free", "a", True)
    assert book.oldest_s("free", "m") == 1.0  # a's parked jobs still wait
    assert book.ahead("free", "m", 2.0, 1, "a") == 1
    assert book.pick(make_policy("fifo"), ["m"], 10.0).seq == 2  # type: ignore[union-attr]
    assert book.pick(make_policy("fifo"), ["m"], 10.0) is None
    book.set_capped("free", "a", False)
    assert book.pick(make_policy("fifo"), ["m"], 10.0).seq == 0  # type: ignore[union-attr]
    assert book.discard("free", "m", 2.0, 1, "a") and len(book) == 0
    assert not book.discard("free", "m", 2.0, 1, "a")
