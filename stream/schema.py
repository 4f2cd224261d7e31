"""Every message on the bus: frozen dataclasses with encode/decode and validation.

Wire format (one ZeroMQ multipart message):
  frame 0  topic, utf-8 (dotted; see ``topics``)
  frame 1  msgpack map: ``v`` schema version, ``type``, ``ts`` sender wall clock (s), the fields;
           a numpy array field is ``{"nd": i, "dtype": "<f4", "shape": [...]}`` pointing at ...
  frame 2+ raw array buffers, C order, in the order of the ``nd`` indices.

This module is the only place that touches msgpack. ``decode`` never trusts its input: anything
malformed raises ``DecodeError`` with a reason; callers drop, count and log it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack
import numpy as np

from bodytalk.stream import topics

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 60 s window of 32 joints is < 1 MB; anything near this is hostile
MAX_HEADER_BYTES = 1024 * 1024
_ALLOWED_DTYPES = {"<f4", "<f8", "<i4", "<i8", "|u1", "|b1", "<f2"}


class DecodeError(ValueError):
    """A message that failed validation; ``str(err)`` is the reason that gets logged."""


@dataclass(frozen=True)
class Array:
    """Field spec: a numpy array of this dtype and rank; ``finite`` rejects NaN/inf."""
    dtype: str
    ndim: int
    finite: bool = True


def _spec(kind: Any, default: Any = dataclasses.MISSING) -> Any:
    if default is dataclasses.MISSING:
        return field(metadata={"kind": kind})
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata={"kind": kind})
    return field(default=default, metadata={"kind": kind})


OPT_STR = (str, type(None))
OPT_FLOAT = (float, type(None))


class Message:
    """Base of every bus message. Subclasses are frozen dataclasses with ``TYPE`` and ``PREFIX``."""

    TYPE: ClassVar[str]
    PREFIX: ClassVar[str]
    REGISTRY: ClassVar[dict[str, type["Message"]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Message.REGISTRY[cls.TYPE] = cls

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind")
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, _check(f.name, kind, value))
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (shapes agree, ...). Raise ValueError."""

    @property
    def topic(self) -> str:
        raise NotImplementedError


def _check(name: str, kind: Any, value: Any) -> Any:
    """Type-check one field value and normalise it (ints accepted as floats, arrays made C order)."""
    if isinstance(kind, Array):
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{name}: expected a numpy array, got {type(value).__name__}")
        if value.ndim != kind.ndim:
            raise ValueError(f"{name}: expected {kind.ndim} dimensions, got shape {value.shape}")
        value = np.ascontiguousarray(value, dtype=np.dtype(kind.dtype))
        if kind.finite and value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if int in kinds and isinstance(value, bool):
        raise ValueError(f"{name}: expected int, got bool")
    if not isinstance(value, kinds):
        want = "/".join(k.__name__ for k in kinds)
        raise ValueError(f"{name}: expected {want}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name}: not finite")
    return value


def encode(msg: Message, ts: float | None = None) -> list[bytes]:
    """Message -> multipart frames ``[topic, header, *buffers]``."""
    header: dict[str, Any] = {"v": SCHEMA_VERSION, "type": msg.TYPE,
                              "ts": time.time() if ts is None else ts}
    buffers: list[bytes] = []
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, np.ndarray):
            header[f.name] = {"nd": len(buffers), "dtype": value.dtype.str, "shape": list(value.shape)}
            buffers.append(memoryview(value).cast("B"))  # zero-copy: zmq sends the view
        else:
            header[f.name] = value
    return [msg.topic.encode(), msgpack.packb(header, use_bin_type=True), *buffers]


def decode(frames: list[bytes]) -> tuple[Message, float]:
    """Multipart frames -> (message, sender ts). Raises ``DecodeError`` with a reason."""
    if len(frames) < 2:
        raise DecodeError(f"expected >= 2 frames, got {len(frames)}")
    total = sum(len(f) for f in frames)
    if total > MAX_MESSAGE_BYTES:
        raise DecodeError(f"oversize message: {total} bytes > {MAX_MESSAGE_BYTES}")
    try:
        topic = bytes(frames[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("topic is not utf-8") from None
    if len(frames[1]) > MAX_HEADER_BYTES:
        raise DecodeError(f"oversize header: {len(frames[1])} bytes")
    try:
        header = msgpack.unpackb(bytes(frames[1]), raw=False, strict_map_key=True)
    except Exception as err:  # msgpack raises many types on garbage
        raise DecodeError(f"header is not msgpack: {type(err).__name__}") from None
    if not isinstance(header, dict):
        raise DecodeError("header is not a map")
    if header.get("v") != SCHEMA_VERSION:
        raise DecodeError(f"schema version {header.get('v')!r} != {SCHEMA_VERSION}")
    cls = Message.REGISTRY.get(header.get("type")) if isinstance(header.get("type"), str) else None
    if cls is None:
        raise DecodeError(f"unknown message type {header.get('type')!r}")
    if not topic.startswith(cls.PREFIX):
        raise DecodeError(f"topic {topic!r} does not match type {cls.TYPE!r}")
    ts = header.get("ts")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
        raise DecodeError("ts missing or not a finite number")
    buffers = frames[2:]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = f.metadata["kind"]
        if f.name not in header:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"field {f.name!r} missing")
            continue
        value = header[f.name]
        kwargs[f.name] = _array(f.name, value, buffers) if isinstance(kind, Array) else value
    try:
        msg = cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise DecodeError(str(err)) from None
    if msg.topic != topic:
        raise DecodeError(f"topic {topic!r} does not match fields ({msg.topic!r})")
    return msg, float(ts)


def _array(name: str, ref: Any, buffers: list[bytes]) -> np.ndarray:
    if not isinstance(ref, dict) or set(ref) != {"nd", "dtype", "shape"}:
        raise DecodeError(f"{name}: bad array descriptor")
    idx, dtype, shape = ref["nd"], ref["dtype"], ref["shape"]
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(buffers):
        raise DecodeError(f"{name}: buffer index {idx!r} out of range ({len(buffers)} buffers)")
    if dtype not in _ALLOWED_DTYPES:
        raise DecodeError(f"{name}: dtype {dtype!r} not allowed")
    if (not isinstance(shape, list) or len(shape) > 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in shape)):
        raise DecodeError(f"{name}: bad shape {shape!r}")
    dt = np.dtype(dtype)
    expected = math.prod(shape) * dt.itemsize
    buf = buffers[idx]
    if len(buf) != expected:
        raise DecodeError(f"{name}: buffer is {len(buf)} bytes, dtype x shape needs {expected}")
    return np.frombuffer(buf, dtype=dt).reshape(shape)


def pack_frames(frames: list[bytes]) -> bytes:
    """Multipart frames -> one blob (how the recorder stores an exact bus message)."""
    return msgpack.packb([bytes(f) for f in frames], use_bin_type=True)


def unpack_frames(blob: bytes) -> list[bytes]:
    try:
        frames = msgpack.unpackb(blob, raw=False)
    except Exception as err:
        raise DecodeError(f"recorded blob is not a frame list: {type(err).__name__}") from None
    if not isinstance(frames, list) or not all(isinstance(f, bytes) for f in frames):
        raise DecodeError("recorded blob is not a list of byte frames")
    return frames


def to_jsonable(msg: Message) -> dict[str, Any]:
    """Fields as plain JSON types; arrays become ``{"shape": [...], "dtype": "..."}``."""
    out: dict[str, Any] = {"type": msg.TYPE}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, np.ndarray):
            value = {"shape": list(value.shape), "dtype": str(value.dtype)}
        out[f.name] = value
    return out


# ---------------------------------------------------------------------------------------------
# The message types. Joints are canonical: metres, Y up, right-handed. Missing joints are finite
# (interpolated or held) with confidence 0: never NaN on the wire, never silently zero.


@dataclass(frozen=True)
class SkeletonFrame(Message):
    """``skeleton.frame.<sensor>``: every tracked body of one capture instant."""
    TYPE = "frame"
    PREFIX = topics.FRAME
    sensor: str = _spec(str)
    seq: int = _spec(int)
    t_capture: float = _spec(float)          # capture clock, seconds
    layout: str = _spec(str)                 # layout id in capture.layouts
    body_ids: np.ndarray = _spec(Array("<i4", 1))    # [B]
    joints: np.ndarray = _spec(Array("<f4", 3))      # [B, J, 3] metres
    confidence: np.ndarray = _spec(Array("<f4", 2))  # [B, J] in [0, 1]

    def validate(self) -> None:
        n = len(self.body_ids)
        if self.joints.shape[0] != n or self.joints.shape[2] != 3:
            raise ValueError(f"joints shape {self.joints.shape} does not fit {n} bodies x J x 3")
        if self.confidence.shape != self.joints.shape[:2]:
            raise ValueError(f"confidence shape {self.confidence.shape} != {self.joints.shape[:2]}")
        _check_unit(self.confidence)

    @property
    def topic(self) -> str:
        return topics.frame(self.sensor)


@dataclass(frozen=True)
class SkeletonWindow(Message):
    """``skeleton.window.<sensor>.<body>``: T frames of one body, evenly resampled at ``fps``."""
    TYPE = "window"
    PREFIX = topics.WINDOW
    sensor: str = _spec(str)
    body: str = _spec(str)
    seq: int = _spec(int)
    t_start: float = _spec(float)
    t_end: float = _spec(float)
    fps: float = _spec(float)
    layout: str = _spec(str)
    joints: np.ndarray = _spec(Array("<f4", 3))        # [T, J, 3] metres
    confidence: np.ndarray = _spec(Array("<f4", 2))    # [T, J] in [0, 1]
    interpolated: np.ndarray = _spec(Array("|b1", 1))  # [T] frame filled across a short gap
    labels: dict = _spec(dict, {})                     # ground truth when the source knows it

    def validate(self) -> None:
        t = self.joints.shape[0]
        if self.joints.shape[2] != 3 or self.confidence.shape != self.joints.shape[:2]:
            raise ValueError(f"joints {self.joints.shape} / confidence {self.confidence.shape} mismatch")
        if self.interpolated.shape != (t,):
            raise ValueError(f"interpolated shape {self.interpolated.shape} != ({t},)")
        if not (self.fps > 0 and self.t_end >= self.t_start):
            raise ValueError("need fps > 0 and t_end >= t_start")
        _check_unit(self.confidence)

    @property
    def topic(self) -> str:
        return topics.window(self.sensor, self.body)


@dataclass(frozen=True)
class EmotionEvent(Message):
    """``emotion.<sensor>.<body>``: the model's reading of one window."""
    TYPE = "emotion"
    PREFIX = topics.EMOTION
    sensor: str = _spec(str)
    body: str = _spec(str)
    window_seq: int = _spec(int)
    t_start: float = _spec(float)
    t_end: float = _spec(float)
    status: str = _spec(str)                    # "ok" | "insufficient_data" | "error"
    label: str | None = _spec(OPT_STR, None)
    stable_label: str | None = _spec(OPT_STR, None)
    probs: dict = _spec(dict, {})               # label -> probability, sums to 1 when status ok
    evidence: dict = _spec(dict, {})            # descriptor name -> value
    explanation: str | None = _spec(OPT_STR, None)
    unsupported: list = _spec(list, [])         # explanation claims the descriptors do not support
    mgs: list = _spec(list, [])                 # micro-gestures: {name, t_start, t_end, confidence}
    latency_ms: dict = _spec(dict, {})          # stage -> ms; "total" = window received -> published

    def validate(self) -> None:
        if self.status not in ("ok", "insufficient_data", "error"):
            raise ValueError(f"status {self.status!r} unknown")
        for k, p in self.probs.items():
            if not isinstance(k, str) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ValueError(f"probs[{k!r}] = {p!r} is not a probability")

    @property
    def topic(self) -> str:
        return topics.emotion(self.sensor, self.body)


@dataclass(frozen=True)
class EmotionText(Message):
    """``emotion.text.<sensor>.<body>``: explanation tokens as they are generated."""
    TYPE = "emotion_text"
    PREFIX = topics.EMOTION_TEXT
    sensor: str = _spec(str)
    body: str = _spec(str)
    window_seq: int = _spec(int)
    text: str = _spec(str)
    done: bool = _spec(bool, False)

    @property
    def topic(self) -> str:
        return topics.emotion_text(self.sensor, self.body)


@dataclass(frozen=True)
class Status(Message):
    """``status.<component>``: heartbeat of every process."""
    TYPE = "status"
    PREFIX = topics.STATUS
    component: str = _spec(str)
    state: str = _spec(str)                  # "running" | "ended" | "disconnected" | "error"
    seq: int = _spec(int, 0)
    rate_hz: float = _spec(float, 0.0)
    drops: int = _spec(int, 0)
    queue_depth: int = _spec(int, 0)
    counters: dict = _spec(dict, {})         # free-form numbers: overruns, decode errors by reason
    message: str | None = _spec(OPT_STR, None)

    @property
    def topic(self) -> str:
        return topics.status(self.component)


def _check_unit(conf: np.ndarray) -> None:
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidence outside [0, 1]")
