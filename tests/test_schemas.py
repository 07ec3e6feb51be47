"""Every wire message: round trip (found by reflection), strictness, fuzzing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurserycry.shared.schemas import (
    AudioFeatures,
    Detection,
    EdgeStatus,
    EncodedArray,
    EpisodeEvent,
    HubStatus,
    Message,
    MessageError,
    NurseryState,
    RawClip,
    UnsupportedVersionError,
    all_messages,
)

T = 1_764_400_000.0
MEL = np.arange(-64, 64, dtype=np.int8).repeat(25)[: 25 * 32].reshape(25, 32)
LEVEL = np.full(25, -20, np.int8)


def features(**over: object) -> AudioFeatures:
    fields: dict[str, object] = {
        "device": "nursery-1",
        "stream": "0123abcd",
        "seq": 7,
        "frame_index": 175,
        "t0": T,
        "frontend": "0123456789abcdef",
    }
    fields.update(over)
    return AudioFeatures.from_arrays(MEL, LEVEL, **fields)


EXAMPLES: dict[type[Message], Message] = {
    AudioFeatures: features(),
    EdgeStatus: EdgeStatus(
        device="n1",
        t=T,
        software="0.1.0",
        source="microphone",
        uptime_s=12.5,
        frames_captured=600,
        messages_sent=24,
        overruns=0,
        spool_depth=3,
        spool_dropped=0,
        level_dbfs=-42.0,
        clock_synchronised=True,
        clock_offset_s=-3600.25,
    ),
    HubStatus: HubStatus(
        t=T,
        software="0.1.0",
        model="m1",
        uptime_s=3.0,
        nurseries=["a", "b"],
        windows=10,
        counters={"duplicates": 2},
        clock_skew_s={"a": -0.25, "b": 3600.0},
    ),
    Detection: Detection(
        device="n1", t=T, label="crying", cry_probability=0.93, level_dbfs=-30.0, model="m1"
    ),
    NurseryState: NurseryState(
        device="n1",
        t=T,
        state="crying",
        crying=True,
        cry_probability=0.9,
        level_dbfs=-31.5,
        episode_started_at=T - 4,
        crying_minutes_today=12.5,
    ),
    EpisodeEvent: EpisodeEvent(
        device="n1",
        event="ended",
        episode_id="n1-1764400000-0",
        started_at=T - 30,
        alert_at=T - 28.5,
        ended_at=T,
        duration_s=30.0,
        peak_probability=0.99,
    ),
    RawClip: RawClip(device="n1", t0=T, sample_rate=16000, data=b"fLaC" + bytes(100)),
}


def test_every_message_has_an_example() -> None:
    assert set(EXAMPLES) == set(all_messages())


@pytest.mark.parametrize("cls", all_messages(), ids=lambda c: c.TYPE)
def test_round_trip(cls: type[Message]) -> None:
    msg = EXAMPLES[cls]
    payload = msg.encode()
    assert len(payload) <= cls.MAX_BYTES
    again = cls.decode(payload)
    assert again == msg
    assert again.encode() == payload
    body = json.loads(payload)
    assert body["type"] == cls.TYPE and body["v"] == cls.VERSION


@pytest.mark.parametrize("cls", all_messages(), ids=lambda c: c.TYPE)
def test_rejects_unknown_version_field_and_type(cls: type[Message]) -> None:
    body = json.loads(EXAMPLES[cls].encode())
    with pytest.raises(UnsupportedVersionError, match="unsupported schema version 99"):
        cls.decode(json.dumps({**body, "v": 99}))
    with pytest.raises(MessageError, match="surprise") as malformed:
        cls.decode(json.dumps({**body, "surprise": 1}))
    assert not isinstance(malformed.value, UnsupportedVersionError)
    with pytest.raises(MessageError, match="type"):
        cls.decode(json.dumps({**body, "type": "something-else"}))
    missing = next(k for k in body if k not in {"type", "v"})
    del body[missing]
    if missing in cls.model_fields and cls.model_fields[missing].is_required():
        with pytest.raises(MessageError, match=missing):
            cls.decode(json.dumps(body))


def test_features_arrays_round_trip_as_compact_binary() -> None:
    msg = AudioFeatures.decode(features().encode())
    np.testing.assert_array_equal(msg.mel.to_numpy(), MEL)
    np.testing.assert_array_equal(msg.level.to_numpy(), LEVEL)
    assert len(features().encode()) < 1500  # 800 int8 codes, base64, plus header


@pytest.mark.parametrize(
    ("payload_change", "reason"),
    [
        ({"t0": float("nan")}, "t0"),
        ({"seq": -1}, "seq"),
        ({"device": "a/b"}, "device"),
        ({"device": "+"}, "device"),
        ({"device": "#"}, "device"),
        ({"device": "Kinder zimmer"}, "device"),
        ({"device": "hub"}, "device"),  # the hub's own topic level
        ({"t0": 12.0}, "t0"),
    ],
)
def test_features_reject_bad_fields(payload_change: dict[str, object], reason: str) -> None:
    body = json.loads(features().encode())
    body.update(payload_change)
    with pytest.raises(MessageError, match=reason):
        AudioFeatures.decode(json.dumps(body))


def test_features_reject_wrong_shapes_dtypes_and_nan() -> None:
    with pytest.raises(ValueError, match="one value per frame"):
        AudioFeatures.from_arrays(MEL, LEVEL[:10], **_fields())
    with pytest.raises(ValueError, match="int8"):
        AudioFeatures(
            mel=EncodedArray.from_numpy(MEL.astype(np.float32)),
            level=EncodedArray.from_numpy(LEVEL),
            **_fields(),
        )
    with pytest.raises(ValueError, match="NaN"):
        EncodedArray.from_numpy(np.array([1.0, np.nan], np.float32))
    body = json.loads(features().encode())
    body["mel"]["shape"] = [26, 32]
    with pytest.raises(MessageError, match="bytes"):
        AudioFeatures.decode(json.dumps(body))
    body["mel"]["shape"] = [100000, 1000]
    with pytest.raises(MessageError, match="larger than"):
        AudioFeatures.decode(json.dumps(body))


def _fields() -> dict[str, object]:
    return {
        "device": "n1",
        "stream": "0123abcd",
        "seq": 0,
        "frame_index": 0,
        "t0": T,
        "frontend": "0123456789abcdef",
    }


def test_oversize_payload_rejected_before_parsing() -> None:
    with pytest.raises(MessageError, match="exceeds"):
        AudioFeatures.decode(b"{" + b" " * AudioFeatures.MAX_BYTES + b"}")


def test_episode_consistency() -> None:
    with pytest.raises(ValueError, match="ended_at"):
        EpisodeEvent(
            device="n1",
            event="started",
            episode_id="e",
            started_at=T,
            alert_at=T,
            ended_at=T + 1,
            duration_s=1,
            peak_probability=0.9,
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(st.binary(max_size=3000), st.text(max_size=2000).map(str.encode)))
def test_decoder_never_raises_anything_but_message_error_on_garbage(payload: bytes) -> None:
    for cls in all_messages():
        with pytest.raises(MessageError):
            cls.decode(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(json.loads(features().encode()))), value=json_values)
def test_mutated_features_are_valid_or_cleanly_rejected(key: str, value: object) -> None:
    body = json.loads(features().encode())
    body[key] = value
    try:
        payload = json.dumps(body).encode()
    except ValueError:
        return
    try:
        msg = AudioFeatures.decode(payload)
    except MessageError as exc:
        assert exc.reason
    else:  # accepted: then it must be a well-formed message again
        assert AudioFeatures.decode(msg.encode()) == msg
