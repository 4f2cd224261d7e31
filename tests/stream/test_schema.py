"""The wire schema: every message type round-trips exactly; every validation rule rejects what it
should, on construction and on decode, with a reason."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from bodytalk.stream import schema
from tests.stream import wire


def test_every_registered_type_has_an_example():
    assert sorted(m.TYPE for m in wire.every_type()) == sorted(schema.Message.REGISTRY)


@pytest.mark.parametrize("msg", wire.every_type(), ids=lambda m: m.TYPE)
def test_every_type_round_trips_field_by_field(msg):
    assert schema.encode(msg)[0] == msg.topic.encode()
    out, ts = schema.decode(wire.frames_of(msg, ts=1234.5))
    assert ts == 1234.5
    assert out.topic == msg.topic
    wire.assert_same(out, msg)


@pytest.mark.parametrize("msg", [wire.frame(bodies=0), wire.frame(bodies=3), wire.window(t=1, joints=1)],
                         ids=["no-bodies", "three-bodies", "one-frame-window"])
def test_edge_shapes_round_trip(msg):
    out, _ = schema.decode(schema.encode(msg))
    wire.assert_same(out, msg)


def test_recorded_blob_round_trips():
    frames = schema.encode(wire.window(), ts=5.0)
    blob = schema.pack_frames(frames)
    assert schema.unpack_frames(blob) == [bytes(f) for f in frames]
    wire.assert_same(schema.decode(schema.unpack_frames(blob))[0], wire.window())


@pytest.mark.parametrize("blob", [b"\xc1", schema.pack_frames([b"a"])[:-1], b"\x92\x01\x02", b"\x05"])
def test_bad_recorded_blob_is_a_decode_error(blob):
    with pytest.raises(schema.DecodeError):
        schema.unpack_frames(blob)


def test_arrays_are_read_only_views():
    joints = np.zeros((1, 25, 3), dtype=np.float32)
    msg = dataclasses.replace(wire.frame(), joints=joints)
    assert not msg.joints.flags.writeable
    assert np.shares_memory(msg.joints, joints)  # no copy ...
    assert joints.flags.writeable                 # ... and the caller's array is left alone
    decoded, _ = schema.decode(wire.frames_of(msg))
    for name in ("body_ids", "joints", "confidence"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(decoded, name)[...] = 0


def test_construction_normalises_dtype_and_layout():
    msg = wire.frame()
    wide = np.asfortranarray(msg.joints.astype(np.float64))
    out = dataclasses.replace(msg, joints=wide, t_capture=3, seq=np.int64(5).item())
    assert out.joints.dtype == np.float32 and out.joints.flags.c_contiguous
    assert np.array_equal(out.joints, msg.joints)
    assert type(out.t_capture) is float and out.t_capture == 3.0
    assert type(dataclasses.replace(msg, t_capture=np.float64(2.5)).t_capture) is float


def test_messages_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        wire.frame().seq = 1


def nan_at(shape, index, value=np.nan):
    a = np.zeros(shape, dtype=np.float32)
    a[index] = value
    return a


def _nested(depth: int) -> list:
    out: list = []
    for _ in range(depth):
        out = [out]
    return out


# (message factory, field changes, message fragment)
BAD_FIELDS = [
    (wire.frame, {"seq": True}, "seq: expected int, got bool"),
    (wire.frame, {"seq": 1.0}, "seq: expected int"),
    (wire.frame, {"seq": -1}, "seq: -1 < 0"),
    (wire.frame, {"seq": 2**64}, "does not fit 64 bits"),
    (wire.frame, {"seq": np.int64(3)}, "seq: expected int, got int64"),
    (wire.frame, {"t_capture": float("nan")}, "t_capture: nan is not finite"),
    (wire.frame, {"t_capture": float("inf")}, "not finite"),
    (wire.frame, {"t_capture": "1.0"}, "t_capture: expected float"),
    (wire.frame, {"t_capture": False}, "expected float, got bool"),
    (wire.frame, {"sensor": b"kinect0"}, "sensor: expected str, got bytes"),
    (wire.frame, {"sensor": "kinect.0"}, "topic segment"),
    (wire.frame, {"sensor": ""}, "topic segment"),
    (wire.frame, {"joints": [[[0.0, 0.0, 0.0]]]}, "joints: expected a numpy array"),
    (wire.frame, {"joints": np.zeros((25, 3), np.float32)}, "expected 3 dimensions"),
    (wire.frame, {"joints": np.zeros((2, 25, 3), np.float32)}, "does not fit 1 bodies"),
    (wire.frame, {"joints": np.zeros((1, 25, 2), np.float32)}, "does not fit 1 bodies x J x 3"),
    (wire.frame, {"joints": nan_at((1, 25, 3), (0, 4, 1))}, "joints: contains NaN"),
    (wire.frame, {"joints": nan_at((1, 25, 3), (0, 0, 0), np.inf)}, "joints: contains NaN or infinite"),
    (wire.frame, {"joints": np.full((1, 25, 3), "1", dtype="<U1")}, "cannot hold float32"),
    (wire.frame, {"body_ids": np.array([0.5], np.float32)}, "body_ids: dtype float32 cannot hold int32"),
    (wire.frame, {"confidence": np.full((1, 25), 1.5, np.float32)}, "confidence: values outside [0, 1]"),
    (wire.frame, {"confidence": np.full((1, 25), -0.5, np.float32)}, "outside [0, 1]"),
    (wire.frame, {"confidence": nan_at((1, 25), (0, 3))}, "outside [0, 1] (or NaN)"),
    (wire.frame, {"confidence": np.ones((1, 24), np.float32)}, "confidence shape"),
    (lambda: wire.frame(bodies=2), {"body_ids": np.array([4, 4], np.int32)}, "not unique"),
    (wire.window, {"interpolated": np.zeros(60, np.int8)}, "interpolated: dtype int8 cannot hold bool"),
    (wire.window, {"interpolated": np.zeros(59, bool)}, "interpolated shape"),
    (wire.window, {"fps": 0.0}, "need fps > 0"),
    (wire.window, {"t_end": 9.0}, "t_end >= t_start"),
    (wire.window, {"joints": np.zeros((0, 17, 3), np.float32),
                   "confidence": np.zeros((0, 17), np.float32),
                   "interpolated": np.zeros(0, bool)}, "T >= 1"),
    (wire.window, {"labels": {1: "joy"}}, "labels: key 1 is not a str"),
    (wire.window, {"labels": {"x": float("nan")}}, "labels: nan is not finite"),
    (wire.window, {"labels": {"x": (1, 2)}}, "tuple is not a JSON type"),
    (wire.window, {"labels": {"x": np.float32(1)}}, "float32 is not a JSON type"),
    (wire.window, {"labels": {"x": b"raw"}}, "bytes is not a JSON type"),
    (wire.window, {"labels": {"x": _nested(schema.MAX_NESTING + 1)}}, "nested deeper"),
    (wire.window, {"labels": []}, "labels: expected dict, got list"),
    (wire.emotion, {"status": "great"}, "status 'great' unknown"),
    (wire.emotion, {"label": None}, "status 'ok' needs a label"),
    (wire.emotion, {"label": 3}, "label: expected str or None"),
    (wire.emotion, {"probs": {"joy": 1.5, "neutral": -0.5}}, "is not a probability"),
    (wire.emotion, {"probs": {"joy": True}}, "is not a probability"),
    (wire.emotion, {"probs": {"joy": 0.5, "neutral": 0.2}}, "sum to 0.7000, not 1"),
    (wire.emotion, {"latency_ms": {"total": -1}}, "is not a duration"),
    (wire.emotion, {"t_end": 1.0}, "t_end 1.0 < t_start"),
    (wire.emotion, {"window_seq": -3}, "window_seq: -3 < 0"),
    (wire.emotion, {"reason": "too few frames"}, "status 'ok' has no reason"),
    (wire.emotion_text, {"done": 1}, "done: expected bool, got int"),
    (wire.emotion_text, {"index": -1}, "index: -1 < 0"),
    (wire.status, {"rate_hz": -1.0}, "rate_hz: -1.0 < 0"),
    (wire.status, {"drops": -1}, "drops: -1 < 0"),
    (wire.status, {"component": "a b"}, "topic segment"),
]


@pytest.mark.parametrize("factory,changes,error", BAD_FIELDS,
                         ids=[f"{f().TYPE}-{'-'.join(c)}-{i}" for i, (f, c, _) in enumerate(BAD_FIELDS)])
def test_validation_rule(factory, changes, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        dataclasses.replace(factory(), **changes)


def test_huge_finite_joints_are_allowed():
    # The finite check's fast path (sum of squares) overflows here; the exact check must pass it.
    msg = dataclasses.replace(wire.frame(), joints=np.full((1, 25, 3), 3e38, np.float32))
    assert np.all(schema.decode(schema.encode(msg))[0].joints == np.float32(3e38))


def test_a_valid_message_with_insufficient_data_needs_no_label():
    msg = dataclasses.replace(wire.emotion(), status="insufficient_data", label=None, probs={}, reason="no pelvis")
    out = schema.decode(schema.encode(msg))[0]
    assert out.label is None and out.reason == "no pelvis"


@pytest.mark.parametrize("msg,field,default", [(wire.emotion(), "reason", None), (wire.emotion_text(), "index", 0)],
                         ids=["emotion-reason", "emotion_text-index"])
def test_a_message_sent_before_a_field_was_added_still_decodes(msg, field, default):
    # Fields added later have defaults (same SCHEMA_VERSION): older senders and recordings stay readable.
    frames = wire.with_header(wire.frames_of(msg), **{field: ...})
    assert field not in wire.header(frames)
    assert getattr(schema.decode(frames)[0], field) == default


def test_encode_refuses_a_non_finite_timestamp():
    with pytest.raises(ValueError, match="ts must be a finite number"):
        schema.encode(wire.status(), ts=float("nan"))


def test_to_jsonable_gives_plain_json():
    out = schema.to_jsonable(wire.window())
    assert out["type"] == "window" and out["sensor"] == "kinect0" and out["fps"] == 30.0
    assert out["joints"] == {"shape": [60, 17, 3], "dtype": "float32"}
    assert out["interpolated"] == {"shape": [60], "dtype": "bool"}
    assert out["labels"] == {"emotion": "joy", "actor": 2, "intensity": 0.5}
    assert json.loads(json.dumps(out)) == out
    assert set(out) == {"type"} | {f.name for f in dataclasses.fields(schema.SkeletonWindow)}
    assert schema.to_jsonable(wire.emotion())["probs"] == {"joy": 0.75, "neutral": 0.25}


def _frame_frames() -> list[bytes]:
    return wire.frames_of(wire.frame(), ts=1.0)


def _array_ref(**changes) -> list[bytes]:
    frames = _frame_frames()
    ref = {**wire.header(frames)["joints"], **changes}
    return wire.with_header(frames, joints={k: v for k, v in ref.items() if v is not ...})


def _buffer(index: int, data: bytes) -> list[bytes]:
    frames = _frame_frames()
    frames[index] = data
    return frames


def _nan_joints() -> list[bytes]:
    joints = np.zeros((1, 25, 3), np.float32)
    joints[0, 0, 0] = np.nan
    return _buffer(3, joints.tobytes())


F = "skeleton.frame.kinect0"
# (frames builder, reason, message fragment)
BAD_WIRE = [
    (lambda: _frame_frames()[:1], "frames", "expected 2 to"),
    (lambda: _frame_frames() + [b""] * 5, "frames", "expected 2 to"),
    (lambda: [*schema.encode(wire.status()), b""], "frames", "1 array frames for 0 array fields"),
    (lambda: _frame_frames()[:4], "array", "buffer index 2"),
    (lambda: _buffer(0, b"\xff\xfeskeleton"), "topic", "not utf-8"),
    (lambda: _buffer(0, b"status.kinect0"), "topic", "does not match type 'frame'"),
    (lambda: _buffer(0, b"skeleton.frame.other"), "topic", "does not match fields"),
    (lambda: _buffer(1, b"\xc1"), "msgpack", "not msgpack"),
    (lambda: _buffer(1, _frame_frames()[1][:-5]), "msgpack", "not msgpack"),
    (lambda: _buffer(1, b"\xa2\xff\xfe"), "msgpack", "not msgpack"),  # a str that is not utf-8
    (lambda: wire.raw(F.encode(), {1: 2}), "msgpack", "not msgpack"),  # int map key
    (lambda: wire.raw(F.encode(), [1, "frame", 1.0]), "header", "header is a list"),
    (lambda: wire.with_header(_frame_frames(), v=2), "version", "schema version 2"),
    (lambda: wire.with_header(_frame_frames(), v=True), "version", "schema version True"),
    (lambda: wire.with_header(_frame_frames(), v=...), "version", "schema version None"),
    (lambda: wire.with_header(_frame_frames(), type="bogus"), "type", "unknown message type 'bogus'"),
    (lambda: wire.with_header(_frame_frames(), type=["frame"]), "type", "unknown message type"),
    (lambda: wire.with_header(_frame_frames(), ts=...), "ts", "missing or not a finite"),
    (lambda: wire.with_header(_frame_frames(), ts="1.0"), "ts", "missing or not a finite"),
    (lambda: wire.with_header(_frame_frames(), ts=float("nan")), "ts", "missing or not a finite"),
    (lambda: wire.with_header(_frame_frames(), ts=True), "ts", "missing or not a finite"),
    (lambda: wire.with_header(_frame_frames(), extra=1), "unknown_field", "unknown fields [\"'extra'\"]"),
    (lambda: wire.raw(F.encode(), {**wire.header(_frame_frames()), b"seq": 1}, *_frame_frames()[2:]),
     "unknown_field", "unknown fields [\"b'seq'\"]"),
    (lambda: wire.with_header(_frame_frames(), seq=...), "missing_field", "missing fields ['seq']"),
    (lambda: wire.with_header(_frame_frames(), seq=-1), "invalid", "seq: -1 < 0"),
    (lambda: wire.with_header(_frame_frames(), seq=True), "invalid", "seq: expected int, got bool"),
    (lambda: wire.with_header(_frame_frames(), t_capture=None), "invalid", "t_capture: expected float"),
    (lambda: wire.with_header(_frame_frames(), layout=b"kv2"), "invalid", "layout: expected str"),
    (lambda: wire.with_header(_frame_frames(), sensor="a.b"), "invalid", "topic segment 'a.b'"),
    (lambda: wire.with_header(_frame_frames(), joints=[0, "<f4", [1, 25, 3]]), "array", "bad array descriptor"),
    (lambda: _array_ref(nd=...), "array", "bad array descriptor"),
    (lambda: _array_ref(extra=1), "array", "bad array descriptor"),
    (lambda: _array_ref(nd=0), "array", "buffer index 0 is not 1"),
    (lambda: _array_ref(nd=True), "array", "buffer index True"),
    (lambda: _array_ref(dtype="<f8"), "array", "dtype '<f8' != '<f4'"),
    (lambda: _array_ref(dtype="O"), "array", "dtype 'O'"),
    (lambda: _array_ref(shape=[1, 25]), "array", "is not a list of 3 ints"),
    (lambda: _array_ref(shape="1,25,3"), "array", "is not a list of 3 ints"),
    (lambda: _array_ref(shape=[1, -25, -3]), "array", "bad shape"),
    (lambda: _array_ref(shape=[True, 25, 3]), "array", "bad shape"),
    (lambda: _array_ref(shape=[1.0, 25, 3]), "array", "bad shape"),
    (lambda: _array_ref(shape=[0, 2**40, 3]), "array", "bad shape"),
    (lambda: _array_ref(shape=[1, 24, 3]), "array", "buffer is 300 bytes, dtype x shape needs 288"),
    (lambda: _buffer(3, b"\x00" * 299), "array", "buffer is 299 bytes"),
    (_nan_joints, "invalid", "joints: contains NaN"),
    (lambda: _buffer(4, np.full(25, 2.0, np.float32).tobytes()), "invalid", "confidence: values outside"),
    (lambda: _buffer(2, np.array([1], np.int32).tobytes() * 2), "array", "buffer is 8 bytes"),
]


@pytest.mark.parametrize("build,reason,error", BAD_WIRE,
                         ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(BAD_WIRE)])
def test_decode_rejects(build, reason, error):
    with pytest.raises(schema.DecodeError, match=re.escape(error)) as info:
        schema.decode(build())
    assert info.value.reason == reason and reason in schema.DecodeError.REASONS


def test_decode_rejects_oversize(monkeypatch):
    frames = _frame_frames()
    monkeypatch.setattr(schema, "MAX_HEADER_BYTES", len(frames[1]) - 1)
    with pytest.raises(schema.DecodeError, match="oversize header") as info:
        schema.decode(frames)
    assert info.value.reason == "oversize"
    monkeypatch.setattr(schema, "MAX_MESSAGE_BYTES", sum(map(len, frames)) - 1)
    with pytest.raises(schema.DecodeError, match="oversize message"):
        schema.decode(frames)


def test_decode_rejects_foreign_msgpack_types():
    # An ext type (or msgpack timestamp) in a free-form field is not JSON: refused, not passed on.
    import msgpack
    window = wire.frames_of(wire.window())
    h = wire.header(window)
    h["labels"] = {"t": msgpack.ExtType(5, b"x")}
    with pytest.raises(schema.DecodeError, match="ExtType is not a JSON type") as info:
        schema.decode(wire.raw(window[0], h, *window[2:]))
    assert info.value.reason == "invalid"


# --- padded windows (a stretch shorter than the window): optional fields, wire-compatible -------

def _padded(msg: schema.Message, real: int = 20) -> schema.Message:
    return dataclasses.replace(msg, padded=True, real_frames=real)


@pytest.mark.parametrize("make", [wire.window, wire.emotion, wire.prompt_work], ids=lambda f: f.__name__)
def test_padded_flag_round_trips(make):
    msg = _padded(make())
    out, _ = schema.decode(wire.frames_of(msg))
    wire.assert_same(out, msg)
    assert out.padded and out.real_frames == 20
    assert schema.to_jsonable(out)["real_frames"] == 20


@pytest.mark.parametrize("make", [wire.window, wire.emotion, wire.prompt_work], ids=lambda f: f.__name__)
def test_an_unpadded_message_is_the_wire_format_older_receivers_know(make):
    """The new fields stay out of the header at their default, and a header without them (an
    older sender or recording) decodes to an unpadded message."""
    frames = wire.frames_of(make())
    assert not {"padded", "real_frames"} & set(wire.header(frames))
    out, _ = schema.decode(frames)
    assert out.padded is False and out.real_frames is None


@pytest.mark.parametrize("padded, real", [(True, None), (False, 20), (True, 60), (True, 0)])
def test_inconsistent_padding_is_rejected(padded, real):
    with pytest.raises(ValueError):
        dataclasses.replace(wire.window(), padded=padded, real_frames=real)
    head = {"padded": padded, "real_frames": real}
    with pytest.raises(schema.DecodeError) as err:
        schema.decode(wire.with_header(wire.frames_of(wire.window()), **head))
    assert err.value.reason == "invalid"
