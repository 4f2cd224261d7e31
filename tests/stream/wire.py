"""Valid example messages of every type, hand-made wire frames and a socket helper, for the
stream tests.

Tests craft hostile input here with msgpack directly: the point is to send what ``schema.encode``
would never produce.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import numpy as np

from bodytalk.stream import schema


def frame(bodies: int = 1, joints: int = 25, seq: int = 7, seed: int = 0) -> schema.SkeletonFrame:
    rng = np.random.default_rng(seed)
    return schema.SkeletonFrame(
        sensor="kinect0", seq=seq, t_capture=12.5, layout="kinect_v2",
        body_ids=np.arange(bodies, dtype=np.int32),
        joints=rng.normal(size=(bodies, joints, 3)).astype(np.float32),
        confidence=rng.uniform(size=(bodies, joints)).astype(np.float32))


def window(t: int = 60, joints: int = 17, seed: int = 0) -> schema.SkeletonWindow:
    rng = np.random.default_rng(seed)
    interp = np.zeros(t, dtype=bool)
    interp[t // 2] = True
    return schema.SkeletonWindow(
        sensor="kinect0", body="3", seq=4, t_start=10.0, t_end=12.0, fps=30.0, layout="unified17",
        joints=rng.normal(size=(t, joints, 3)).astype(np.float32),
        confidence=rng.uniform(size=(t, joints)).astype(np.float32), interpolated=interp,
        labels={"emotion": "joy", "actor": 2, "intensity": 0.5})


def emotion() -> schema.EmotionEvent:
    return schema.EmotionEvent(
        sensor="kinect0", body="3", window_seq=4, t_start=10.0, t_end=12.0, status="ok",
        label="joy", stable_label="neutral", probs={"joy": 0.75, "neutral": 0.25},
        evidence={"speed": 1.25, "bands": {"speed": "high"}}, explanation="Fast, open arms.",
        unsupported=["slumped"], mgs=[{"name": "nod", "t_start": 10.5, "t_end": 10.9, "confidence": 0.8}],
        latency_ms={"encoder": 4.5, "total": 31})


def emotion_text() -> schema.EmotionText:
    return schema.EmotionText(sensor="kinect0", body="3", window_seq=4, text="Fast", done=True)


def status() -> schema.Status:
    return schema.Status(component="capture", state="running", seq=3, rate_hz=29.9, drops=1,
                         queue_depth=2, counters={"frames": 100, "drops": {"version": 1}},
                         message="ok")


def assert_same(a: schema.Message, b: schema.Message) -> None:
    """Field-by-field equality; arrays equal in dtype, shape and values."""
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == x.shape, f.name
            assert np.array_equal(x, y), f.name
        else:
            assert type(y) is type(x) and y == x, f.name


def prompt_work() -> schema.PromptWork:
    rng = np.random.default_rng(0)
    return schema.PromptWork(
        sensor="kinect0", body="3", window_seq=4, t_start=10.0, t_end=12.0, model="abc123",
        status="ok", tokens=rng.normal(size=(8, 16)).astype(np.float32),
        head_logits=rng.normal(size=5).astype(np.float32), evidence={"speed": 1.25, "jerk": None},
        valid_share=0.9, evidence_text="speed high", mgs={"nod": [[0.5, 0.9, 0.8]]}, t_received=12.1,
        latency_ms={"encoder": 4.5})


def every_type() -> list[schema.Message]:
    """One valid message of every registered type (a test checks none is missing)."""
    return [frame(), window(), emotion(), emotion_text(), status(), prompt_work()]


def frames_of(msg: schema.Message, ts: float | None = None) -> list[bytes]:
    """``schema.encode`` as plain bytes (what a receiver gets)."""
    return [bytes(f) for f in schema.encode(msg, ts)]


def header(frames: list) -> dict[str, Any]:
    return msgpack.unpackb(bytes(frames[1]), raw=False)


def with_header(frames: list, **changes: Any) -> list[bytes]:
    """Frames whose header has ``changes`` applied; a value of ``...`` deletes the key."""
    h = header(frames)
    for key, value in changes.items():
        if value is ...:
            h.pop(key, None)
        else:
            h[key] = value
    return [bytes(frames[0]), msgpack.packb(h, use_bin_type=True), *map(bytes, frames[2:])]


def raw(topic: bytes, head: Any, *buffers: bytes) -> list[bytes]:
    """Frames from any header object, however wrong."""
    return [topic, msgpack.packb(head, use_bin_type=True), *buffers]


def connect(pub, sub, probe: schema.Message) -> None:
    """Wait out ZeroMQ's slow joiner: send ``probe`` until one arrives, then drain the queue."""
    for _ in range(500):
        pub.send(probe)
        if sub.recv(timeout=0.01) is not None:
            break
    else:
        raise AssertionError(f"subscriber never connected to {pub.addr}")
    while sub.recv(timeout=0.05) is not None:
        pass
