"""Ingest (pure): validation, dedupe, ordering, gaps, counters and rate-limited logs."""

from __future__ import annotations

import json
import logging

import pytest

from nurserycry.hub.counters import Counters
from nurserycry.hub.ingest import Ingest
from nurserycry.shared.throttle import RateLimitedWarnings
from nurserycry.shared.topics import Topics

from tests.test_hub_support import FRONTEND, payload

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


def test_new_stream_restarts_order_and_old_stream_is_refused() -> None:
    ing = make()
    assert seqs(ing, "n1", 5, 6) == [5, 6]
    assert seqs(ing, "n1", 0, stream="bbbbbbbb") == [0]
    assert ing.counters.get("new_streams") == 1
    assert seqs(ing, "n1", 7) == []  # from the replaced stream
    assert ing.counters.get("out_of_order") == 1


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
