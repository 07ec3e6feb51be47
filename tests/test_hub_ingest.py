"""Ingest (pure): validation, dedupe, ordering, gaps, counters and rate-limited logs."""

from __future__ import annotations

import json
import logging

import pytest

from nurserycry.hub.counters import Counters
from nurserycry.hub.ingest import Ingest
from nurserycry.shared.throttle import RateLimitedWarnings
from nurserycry.shared.topics import Topics

from tests.test_hub_support import FRONTEND, features, payload

TOPICS = Topics()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(reorder: int = 4, wait: float = 2.0, clock: Clock | None = None) -> Ingest:
    return Ingest(
        TOPICS,
        Counters(),
        FRONTEND,
        32,
        reorder_messages=reorder,
        reorder_wait_s=wait,
        clock=clock or Clock(),
    )


def seqs(ing: Ingest, device: str, *numbers: int, **kw: object) -> list[int]:
    out: list[int] = []
    for n in numbers:
        out += [
            a.msg.seq for a in ing.feed(f"nurserycry/{device}/features", payload(device, n, **kw))
        ]
    return out


def test_in_order_messages_pass_with_arrays() -> None:
    ing = make()
    got = ing.feed("nurserycry/n1/features", payload("n1", 0, crying=True))
    assert len(got) == 1
    assert got[0].nursery == "n1"
    assert got[0].mel.shape == (25, 32)
    assert got[0].level.shape == (25,)
    assert seqs(ing, "n1", 1, 2, 3) == [1, 2, 3]
    assert ing.counters.get("messages") == 4


def test_duplicates_processed_once() -> None:
    ing = make()
    assert seqs(ing, "n1", 0, 1, 1, 0, 2, 2) == [0, 1, 2]
    assert ing.counters.get("duplicates") == 3
    assert ing.counters.get("gaps") == 0


def test_reordering_within_the_window() -> None:
    ing = make(reorder=4)
    assert seqs(ing, "n1", 0, 2, 3) == [0]
    assert seqs(ing, "n1", 1) == [1, 2, 3]
    assert ing.counters.get("reordered") == 2
    assert ing.counters.get("gaps") == 0


def test_gap_declared_when_reorder_window_overflows_and_late_one_is_out_of_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ing = make(reorder=2)
    assert seqs(ing, "n1", 0, 3, 4) == [0]
    with caplog.at_level(logging.WARNING):
        assert seqs(ing, "n1", 5) == [3, 4, 5]
    assert ing.counters.get("gaps") == 1
    assert ing.counters.get("frames_lost") == 50  # seq 1 and 2, 25 frames each
    assert "2 message(s) missing before seq 3" in caplog.text
    assert seqs(ing, "n1", 1) == []  # too late: its frames were given up
    assert ing.counters.get("out_of_order") == 1
    assert ing.counters.get("duplicates") == 0


def test_gap_declared_after_wait() -> None:
    clock = Clock()
    ing = make(reorder=100, wait=2.0, clock=clock)
    assert seqs(ing, "n1", 0, 2) == [0]
    clock.now = 1.0
    assert ing.expire() == []
    clock.now = 2.5
    assert [a.msg.seq for a in ing.expire()] == [2]
    assert ing.counters.get("gaps") == 1


def test_a_new_stream_is_used_at_once_when_the_old_one_is_silent() -> None:
    clock = Clock()
    ing = make(clock=clock)
    assert seqs(ing, "n1", 5, 6) == [5, 6]
    clock.now = 10.0  # the agent restarted with a new spool
    got = ing.feed("nurserycry/n1/features", payload("n1", 0, stream="bbbbbbbb"))
    assert [(a.msg.seq, a.restart) for a in got] == [(0, True)]
    assert ing.counters.get("new_streams") == 1
    assert seqs(ing, "n1", 7) == []  # the old stream, while the new one is live: not used
    assert seqs(ing, "n1", 1, stream="bbbbbbbb") == [1]


def test_nurseries_are_independent() -> None:
    ing = make()
    assert seqs(ing, "n1", 0, 1) == [0, 1]
    assert seqs(ing, "n2", 0, 1) == [0, 1]
    assert ing.nurseries == ["n1", "n2"]


def _mangle(field: str, value: object) -> bytes:
    body = json.loads(payload("n1", 0))
    body[field] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("topic", "data", "counter"),
    [
        ("nurserycry/n1/features", b"not json", "rejected_malformed"),
        ("nurserycry/n1/features", b"", "rejected_malformed"),
        ("nurserycry/n1/features", _mangle("seq", -1), "rejected_malformed"),
        (
            "nurserycry/n1/features",
            _mangle("mel", {"dtype": "int8", "shape": [2, 32], "data": "AA=="}),
            "rejected_malformed",
        ),
        ("nurserycry/n1/features", _mangle("v", 99), "rejected_version"),
        ("nurserycry/n1/features", b"x" * 70_000, "rejected_oversize"),
        ("nurserycry/n2/features", payload("n1", 0), "rejected_topic"),
        ("nurserycry/hub/features", payload("n1", 0), "rejected_topic"),
        (
            "nurserycry/n1/features",
            payload("n1", 0, frontend="0123456789abcdef"),
            "rejected_frontend",
        ),
        ("nurserycry/n1/features", payload("n1", 0, n_mels=40), "rejected_shape"),
    ],
)
def test_rejections_are_counted_and_logged(
    topic: str, data: bytes, counter: str, caplog: pytest.LogCaptureFixture
) -> None:
    ing = make()
    with caplog.at_level(logging.WARNING):
        assert ing.feed(topic, data) == []
    assert ing.counters.get(counter) == 1
    assert topic in caplog.text
    # a good message from the same nursery still goes through
    assert seqs(ing, "n1", 0) == [0]


def test_rejection_log_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    ing = make()
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            ing.feed("nurserycry/n1/features", b"garbage")
    assert ing.counters.get("rejected_malformed") == 1000
    assert len([r for r in caplog.records if "rejected message" in r.getMessage()]) == 1


def test_frontend_mismatch_is_loud_once_per_device(caplog: pytest.LogCaptureFixture) -> None:
    ing = make()
    with caplog.at_level(logging.WARNING):
        for n in range(5):
            ing.feed("nurserycry/n1/features", payload("n1", n, frontend="0123456789abcdef"))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "REFUSING" in errors[0].getMessage()
    assert ing.counters.get("rejected_frontend") == 5


def test_rate_limited_warnings_report_suppressed() -> None:
    clock = Clock()
    logger = logging.getLogger("test.rate")
    warn = RateLimitedWarnings(logger, interval_s=60, clock=clock)
    assert warn.warn(("a",), "x %s", 1)
    assert not warn.warn(("a",), "x %s", 2)
    assert warn.warn(("b",), "y")
    clock.now = 61
    assert warn.warn(("a",), "x %s", 3)


# -- #14: runs, far jumps, restored spools, clocks, allow-list ---------------------------


def feed_at(ing: Ingest, n: int, *, stream: str = "abcdef01", t_shift: float = 0.0) -> list[int]:
    msg = features("n1", n, stream=stream)
    msg = msg.model_copy(update={"t0": msg.t0 + t_shift})
    return [a.msg.seq for a in ing.feed("nurserycry/n1/features", msg.encode())]


def test_a_second_live_stream_wins_only_while_live_and_the_first_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """#14.1: a laptop streaming as the nursery must not silence the real edge for good."""
    clock = Clock()
    ing = make(clock=clock)
    twin = "bbbbbbbb"
    assert seqs(ing, "n1", 0, 1, 2, 3, 4) == [0, 1, 2, 3, 4]
    with caplog.at_level(logging.WARNING):
        assert seqs(ing, "n1", 0, 1, stream=twin) == []  # not live yet: the real one goes on
        assert seqs(ing, "n1", 5) == [5]
        assert seqs(ing, "n1", 2, stream=twin) == [0, 1, 2]  # live and newer: it wins
        assert "two edge agents" not in caplog.text  # (an edge restarted in a new stream)
        assert seqs(ing, "n1", 6) == []  # the real edge waits, numbering kept
    # ... but it goes on speaking while the newer one is live: two agents
    assert "two edge agents stream for nursery n1" in caplog.text
    assert seqs(ing, "n1", 3, stream=twin) == [3]
    clock.now = 6.0  # the twin stopped
    got = ing.feed("nurserycry/n1/features", payload("n1", 7))
    assert [(a.msg.seq, a.restart) for a in got] == [(6, True), (7, False)]
    assert seqs(ing, "n1", 8, 9) == [8, 9]  # and stays in use
    assert ing.counters.get("duplicates") == 0 and ing.counters.get("out_of_order") == 0


def test_a_restarted_edge_drains_its_old_stream_then_is_heard_in_the_new_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a crash the edge numbers in a new stream (edge/spool.py), but first sends
    what its spool kept of the old one. The old stream's backlog is used to its end, then
    the new stream's audio: nothing dropped, no gap, no "two agents" warning."""
    clock = Clock()
    ing = make(clock=clock)
    old, new = "abcdef01", "bbbbbbbb"
    assert seqs(ing, "n1", *range(10), stream=old) == list(range(10))
    # the broker goes away: 10..29 reach the spool; then a kill, and a restart 8 s on
    clock.now = 8.0  # sends the spooled backlog first, then the new stream
    with caplog.at_level(logging.WARNING):
        assert seqs(ing, "n1", *range(10, 30), stream=old) == list(range(10, 30))
        got = []
        for n in range(30, 40):  # numbering goes on above the spooled rows
            msg = features("n1", n, stream=new)
            msg = msg.model_copy(update={"t0": msg.t0 + 30.0})  # 30 s later audio
            got += ing.feed("nurserycry/n1/features", msg.encode())
    assert [(a.msg.stream, a.msg.seq) for a in got] == [(new, n) for n in range(30, 40)]
    assert got[0].restart and not any(a.restart for a in got[1:])
    assert "two edge agents" not in caplog.text
    c = ing.counters
    assert c.get("new_streams") == 1 and ing.stream_in_use("n1") == new
    assert c.get("duplicates") == c.get("other_stream") == c.get("gaps") == 0


def test_one_stray_message_of_another_stream_changes_nothing() -> None:
    ing = make()
    assert seqs(ing, "n1", 0, 1) == [0, 1]
    assert seqs(ing, "n1", 0, stream="bbbbbbbb") == []
    assert seqs(ing, "n1", *range(2, 40)) == list(range(2, 40))


def test_a_far_jump_in_seq_does_not_blind_the_nursery() -> None:
    """#14.2: one message 2^31 ahead used to make every later message 'out of order'."""
    ing = make(reorder=4)
    assert seqs(ing, "n1", 0, 1, 2) == [0, 1, 2]
    assert feed_at(ing, 2**31, t_shift=-(2**31) * 0.5 + 1.5) == []  # same time, far seq
    assert seqs(ing, "n1", *range(3, 30)) == list(range(3, 30))
    c = ing.counters
    assert c.get("gaps") == c.get("out_of_order") == c.get("duplicates") == 0


def test_a_real_jump_after_silence_is_a_new_run_used_at_once() -> None:
    clock = Clock()
    ing = make(clock=clock)
    assert seqs(ing, "n1", 0, 1) == [0, 1]
    clock.now = 60.0  # the edge was away and dropped the oldest of its spool
    assert seqs(ing, "n1", 5000, 5001) == [5000, 5001]


def test_a_restored_spool_is_used_not_dropped_as_duplicates() -> None:
    """#14.10: an SD-card image restored on the Pi numbers again from an old seq."""
    clock = Clock()
    ing = make(clock=clock)
    assert seqs(ing, "n1", *range(100)) == list(range(100))
    clock.now = 120.0
    assert seqs(ing, "n1", 40, 41) == []  # the image's own backlog: sent before, repeats
    restored = [s for n in range(42, 60) for s in feed_at(ing, n, t_shift=3600.0)]
    assert restored == list(range(42, 60))  # new audio under the old numbers: used
    assert ing.counters.get("duplicates") == 2


def test_a_clock_far_ahead_is_clamped_to_the_hubs_and_reported() -> None:
    """#14.6: a capture time in 2096 must not date rows 70 years ahead."""
    now = 1_800_000_000.0
    ing = Ingest(TOPICS, Counters(), FRONTEND, 32, clock=Clock(), wall=lambda: now)
    ahead = 2_000_000.0
    base = features("n1", 0)
    for n in range(3):
        msg = features("n1", n).model_copy(update={"t0": now + ahead + n * 0.5})
        (got,) = ing.feed("nurserycry/n1/features", msg.encode())
        assert got.t0 == pytest.approx(now - 0.5 + n * 0.5)  # continuous, on the hub's clock
        assert got.restart is (n == 0)
    assert ing.counters.get("clock_clamped") == 1
    assert ing.clock_skew()["n1"] == pytest.approx(ahead + 1.5, abs=0.01)
    assert base.t0 < now  # a time in the past is kept as it is
    (past,) = ing.feed("nurserycry/n2/features", features("n2", 0).encode())
    assert past.t0 == features("n2", 0).t0 and not past.restart


def test_allow_list_and_cap_on_nurseries() -> None:
    allowed = Ingest(TOPICS, Counters(), FRONTEND, 32, allowed=["n1"])
    assert len(allowed.feed("nurserycry/n1/features", payload("n1", 0))) == 1
    assert allowed.feed("nurserycry/n2/features", payload("n2", 0)) == []
    assert allowed.counters.get("rejected_nursery") == 1
    capped = Ingest(TOPICS, Counters(), FRONTEND, 32, max_nurseries=2)
    for name in ("n1", "n2", "n3", "n4"):
        capped.feed(f"nurserycry/{name}/features", payload(name, 0))
    assert capped.nurseries == ["n1", "n2"]
    assert capped.counters.get("rejected_nursery") == 2
    assert len(capped.feed("nurserycry/n1/features", payload("n1", 1))) == 1


def test_what_the_real_edge_sent_after_the_twin_stopped_is_all_used() -> None:
    clock = Clock()
    ing = make(clock=clock)
    assert seqs(ing, "n1", 0, 1) == [0, 1]
    assert seqs(ing, "n1", 0, 1, 2, stream="bbbbbbbb") == [0, 1, 2]  # the twin, live
    assert seqs(ing, "n1", 2, 3) == []  # the real edge while the twin is live
    for n in range(4, 14):  # the twin fell silent at 0 s; the real edge goes on
        clock.now = (n - 3) * 0.5
        got = seqs(ing, "n1", n)
    assert got == list(range(4, 14))  # on taking over (5 s on): all it sent since
    assert ing.counters.get("other_stream") == 2  # only 2 and 3, sent while the twin spoke


def test_a_repeat_of_a_held_message_is_a_duplicate() -> None:
    ing = make(reorder=4)
    assert seqs(ing, "n1", 0, 2, 2) == [0]
    assert ing.counters.get("duplicates") == 1
    assert seqs(ing, "n1", 1) == [1, 2]


def test_a_clock_somewhat_ahead_is_kept_but_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    now = 1_800_000_000.0
    ing = Ingest(TOPICS, Counters(), FRONTEND, 32, clock=Clock(), wall=lambda: now)
    msg = features("n1", 0).model_copy(update={"t0": now + 60.0})
    with caplog.at_level(logging.WARNING):
        (got,) = ing.feed("nurserycry/n1/features", msg.encode())
    assert got.t0 == now + 60.0 and ing.counters.get("clock_clamped") == 0
    assert "its clock is 60.5 s ahead" in caplog.text
