"""The hub's queue shares every batch between nurseries (pure, plus one blocking put)."""

from __future__ import annotations

import threading
import time

from nurserycry.hub.fair_queue import FairQueue


def test_a_flood_from_one_nursery_does_not_delay_another() -> None:
    q: FairQueue[tuple[str, int]] = FairQueue(30_000)
    for i in range(20_000):
        assert q.put("flood", ("flood", i), timeout=0)
    q.put("quiet", ("quiet", 0), timeout=0)
    first = q.take(512)
    assert ("quiet", 0) in first  # in the first batch, not after 20,000 others
    rest = first + [x for _ in range(100) for x in q.take(512)]
    assert [i for k, i in rest if k == "flood"] == list(range(20_000))  # each keeps its order
    assert q.empty()


def test_batches_start_with_the_next_nursery_each_time() -> None:
    q: FairQueue[str] = FairQueue(100)
    for key in "abc":
        for i in range(3):
            q.put(key, f"{key}{i}", timeout=0)
    assert q.take(2) == ["a0", "b0"]
    assert q.take(3) == ["b1", "c0", "a1"]  # the next batch begins one nursery on
    assert q.take(10) == ["c1", "a2", "b2", "c2"]


def test_put_waits_for_room_then_gives_up() -> None:
    q: FairQueue[int] = FairQueue(2)
    assert q.put("a", 1, timeout=0) and q.put("a", 2, timeout=0)
    began = time.monotonic()
    assert not q.put("b", 3, timeout=0.2)
    assert time.monotonic() - began >= 0.2
    threading.Timer(0.1, lambda: q.take(1)).start()
    assert q.put("b", 3, timeout=5)
    assert sorted(q.take(10)) == [2, 3]


def test_waiting_counts_one_keys_items() -> None:
    q: FairQueue[int] = FairQueue(10)
    for i in range(3):
        q.put("a", i, timeout=0)
    q.put("b", 9, timeout=0)
    assert (q.waiting("a"), q.waiting("b"), q.waiting("c")) == (3, 1, 0)
    q.take(2)
    assert (q.waiting("a"), q.waiting("b")) == (2, 0)
