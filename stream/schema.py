"""Every message on the bus: frozen dataclasses with encode/decode and validation.

Wire format (one ZeroMQ multipart message):
  frame 0  topic, utf-8 (dotted; see ``topics``)
  frame 1  msgpack map: ``v`` schema version, ``type``, ``ts`` sender wall clock (s), the fields;
           a numpy array field is ``{"nd": i, "dtype": "<f4", "shape": [...]}`` pointing at ...
  frame 2+ raw array buffers, C order; the i-th array field (declaration order) is ``nd`` i.

This module is the only place that touches msgpack. ``decode`` never trusts its input: anything
malformed raises ``DecodeError`` whose ``reason`` is a short fixed key (for drop counters) and whose
text says what was wrong. The rules, all enforced by the one constructor path (``__post_init__``):
- the header holds ``v``, ``type``, ``ts`` and the type's fields, nothing else: an unknown key is
  rejected (a typo must not drop data silently; a new field is a schema version bump);
- ints are ints (never bools), floats are finite (ints are accepted and become floats), free-form
  dicts/lists hold JSON types only (str keys, finite floats, no bytes/tuples/numpy scalars);
- an array's wire dtype must be the field's dtype exactly, its rank the field's rank, its buffer
  exactly dtype x shape bytes; float arrays are finite, confidences in [0, 1].
Arrays on a message are read-only: decoded ones are views of the received buffer; a constructed
message holds a read-only view of the caller's array (no copy), so do not write to an array after
putting it in a message.
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
MAX_NESTING = 16  # free-form dicts/lists: evidence, labels, micro-gestures are two levels deep
_INT_RANGE = (-2**63, 2**64)  # what msgpack can carry
_ONE_F4 = 0x3F800000          # bit pattern of float32 1.0
_U4 = np.dtype(np.uint32)


class DecodeError(ValueError):
    """A message that failed validation; ``str(err)`` is the reason that gets logged and ``reason``
    a short fixed key ("version", "array", ...) for drop counters."""

    # Every ``reason`` decode gives: drop counters (and status messages) never grow beyond these.
    REASONS = frozenset({"frames", "oversize", "topic", "msgpack", "header", "version", "type", "ts",
                         "unknown_field", "missing_field", "array", "invalid"})

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Array:
    """Field spec: a numpy array of this dtype and rank; ``finite`` rejects NaN/inf, ``unit``
    requires every value in [0, 1] (which implies finite)."""
    dtype: str
    ndim: int
    finite: bool = True
    unit: bool = False

    def __post_init__(self) -> None:
        if self.unit and self.dtype != "<f4":
            raise ValueError("Array(unit=True) is implemented for '<f4' only")
        dt = np.dtype(self.dtype)
        object.__setattr__(self, "np_dtype", dt)
        object.__setattr__(self, "check_finite", self.finite and dt.kind == "f" and not self.unit)

    def check(self, name: str, value: Any) -> np.ndarray:
        """Return ``value`` as a C-ordered, read-only array of this dtype, or raise ValueError."""
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{name}: expected a numpy array, got {type(value).__name__}")
        if value.ndim != self.ndim:
            raise ValueError(f"{name}: expected {self.ndim} dimensions, got shape {value.shape}")
        dt = self.np_dtype
        if value.dtype != dt:
            if not np.can_cast(value.dtype, dt, "same_kind"):
                raise ValueError(f"{name}: dtype {value.dtype} cannot hold {dt} values")
            value = np.ascontiguousarray(value, dtype=dt)  # a copy nobody else holds
            value.flags.writeable = False
        else:
            flags = value.flags
            if not flags.c_contiguous:
                value = np.ascontiguousarray(value)
                value.flags.writeable = False
            elif flags.writeable:  # the caller's array: a read-only view, no copy
                value = value.view()
                value.flags.writeable = False
        if not value.size:
            return value
        if self.unit:
            # One integer scan instead of min + max + isfinite: non-negative float32 values order
            # like their bit patterns, and -0.0, negatives, inf and NaN all lie above 1.0 as
            # uint32. (argmax + item: a third of the cost of max() on small arrays.)
            bits = value.view(_U4)
            if bits.item(bits.argmax()) > _ONE_F4:
                raise ValueError(f"{name}: values outside [0, 1] (or NaN)")
        elif self.check_finite and not math.isfinite(np.vdot(value, value)):
            # A finite sum of squares proves every value finite (NaN and inf propagate) in one
            # cheap BLAS call; only an overflow (|x| > 1e19) needs the exact element-wise test.
            if not np.isfinite(value).all():
                raise ValueError(f"{name}: contains NaN or infinite values")
        return value


@dataclass(frozen=True)
class Scalar:
    """Field spec: one value of ``type`` (str, int, float, bool, dict or list), ``None`` when
    ``optional``; numbers at least ``lo``."""
    type: type
    optional: bool = False
    lo: float | None = None

    def check(self, name: str, value: Any) -> Any:
        t = self.type
        if type(value) is not t:  # the common exact type skips the coercion rules
            value = self._coerce(name, value)
            if value is None:
                return None
        if t is float:
            if not math.isfinite(value):
                raise ValueError(f"{name}: {value} is not finite")
        elif t is int:
            if not _INT_RANGE[0] <= value < _INT_RANGE[1]:
                raise ValueError(f"{name}: {value} does not fit 64 bits")
        elif t is dict or t is list:
            _check_plain(name, value, 0)
        if self.lo is not None and value < self.lo:
            raise ValueError(f"{name}: {value} < {self.lo}")
        return value

    def _coerce(self, name: str, value: Any) -> Any:
        """None when optional, int -> float, subclasses (numpy float64, Counter) -> the plain
        type (so a message equals its decoded copy); anything else is an error."""
        t = self.type
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float) if t is float else t):
            raise ValueError(f"{name}: expected {t.__name__}{' or None' if self.optional else ''}, "
                             f"got {type(value).__name__}")
        try:
            return t(value)
        except OverflowError:  # float(10**400)
            raise ValueError(f"{name}: {value} is out of range") from None


def _check_plain(name: str, value: Any, depth: int) -> None:
    """Free-form data must be JSON types (what msgpack round-trips unchanged and to_jsonable can
    print): str-keyed dicts, lists, str, int, finite float, bool, None."""
    if depth > MAX_NESTING:
        raise ValueError(f"{name}: nested deeper than {MAX_NESTING}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{name}: key {k!r} is not a str")
            _check_plain(name, v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_plain(name, v, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name}: {value} is not finite")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not _INT_RANGE[0] <= value < _INT_RANGE[1]:
            raise ValueError(f"{name}: {value} does not fit 64 bits")
    elif not (value is None or isinstance(value, (str, bool))):
        raise ValueError(f"{name}: {type(value).__name__} is not a JSON type "
                         f"(use list for tuples, .item() for numpy scalars)")


def _spec(kind: Any, default: Any = dataclasses.MISSING) -> Any:
    if isinstance(kind, type):
        kind = Scalar(kind)
    if default is dataclasses.MISSING:
        return field(metadata={"kind": kind})
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata={"kind": kind})
    return field(default=default, metadata={"kind": kind})


OPT_STR = Scalar(str, optional=True)
OPT_FLOAT = Scalar(float, optional=True)
COUNT = Scalar(int, lo=0)  # sequence numbers, counters


@dataclass(frozen=True)
class _Layout:
    """Per-class field table, built once: the hot paths never call ``dataclasses.fields``."""
    specs: tuple[tuple[str, Any], ...]  # (name, kind) in declaration order
    arrays: tuple[tuple[str, Array], ...]
    names: frozenset[str]
    required: frozenset[str]


class Message:
    """Base of every bus message. Subclasses are frozen dataclasses with ``TYPE`` and ``PREFIX``
    and build their topic in ``_make_topic``; ``topic`` is computed (and validated) once."""

    TYPE: ClassVar[str]
    PREFIX: ClassVar[str]
    REGISTRY: ClassVar[dict[str, type["Message"]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.TYPE in Message.REGISTRY:
            raise TypeError(f"message type {cls.TYPE!r} is defined twice")
        Message.REGISTRY[cls.TYPE] = cls

    @classmethod
    def _layout(cls) -> _Layout:
        layout = cls.__dict__.get("_fields_cache")
        if layout is None:  # built lazily: @dataclass runs after __init_subclass__
            fs = dataclasses.fields(cls)
            specs = tuple((f.name, f.metadata["kind"]) for f in fs)
            layout = _Layout(specs, tuple((n, k) for n, k in specs if isinstance(k, Array)),
                             frozenset(f.name for f in fs),
                             frozenset(f.name for f in fs if f.default is dataclasses.MISSING
                                       and f.default_factory is dataclasses.MISSING))
            cls._fields_cache = layout
        return layout

    def __post_init__(self) -> None:
        values = self.__dict__
        for name, kind in self._layout().specs:
            value = values[name]
            checked = kind.check(name, value)
            if checked is not value:
                object.__setattr__(self, name, checked)
        self.validate()
        object.__setattr__(self, "_topic", self._make_topic())

    def validate(self) -> None:
        """Cross-field checks (shapes agree, ...). Raise ValueError."""

    def _make_topic(self) -> str:
        raise NotImplementedError

    @property
    def topic(self) -> str:
        return self._topic


def encode(msg: Message, ts: float | None = None) -> list[bytes]:
    """Message -> multipart frames ``[topic, header, *buffers]`` (buffers are zero-copy views)."""
    if ts is None:
        ts = time.time()
    elif isinstance(ts, bool) or not (isinstance(ts, (int, float)) and math.isfinite(ts)):
        raise ValueError(f"ts must be a finite number, got {ts!r}")
    header: dict[str, Any] = {"v": SCHEMA_VERSION, "type": msg.TYPE, "ts": ts}
    buffers: list[Any] = []
    values = msg.__dict__
    for name, kind in msg._layout().specs:
        value = values[name]
        if isinstance(kind, Array):
            header[name] = {"nd": len(buffers), "dtype": kind.dtype, "shape": list(value.shape)}
            value = memoryview(value).cast("B") if value.size else b""  # cast refuses empty arrays
            buffers.append(value)
        else:
            header[name] = value
    return [msg.topic.encode(), msgpack.packb(header, use_bin_type=True), *buffers]


def decode(frames: list[bytes]) -> tuple[Message, float]:
    """Multipart frames -> (message, sender ts). Raises ``DecodeError`` with a reason."""
    if not 2 <= len(frames) <= 2 + _MAX_ARRAYS:
        raise DecodeError(f"expected 2 to {2 + _MAX_ARRAYS} frames, got {len(frames)}", "frames")
    total = sum(map(len, frames))
    if total > MAX_MESSAGE_BYTES:
        raise DecodeError(f"oversize message: {total} bytes > {MAX_MESSAGE_BYTES}", "oversize")
    if len(frames[1]) > MAX_HEADER_BYTES:
        raise DecodeError(f"oversize header: {len(frames[1])} bytes > {MAX_HEADER_BYTES}", "oversize")
    try:
        topic = str(frames[0], "utf-8")
    except UnicodeDecodeError:
        raise DecodeError("topic is not utf-8", "topic") from None
    try:
        header = msgpack.unpackb(frames[1], raw=False, strict_map_key=True)
    except Exception as err:  # msgpack raises many types on garbage
        raise DecodeError(f"header is not msgpack: {type(err).__name__}", "msgpack") from None
    if type(header) is not dict:
        raise DecodeError(f"header is a {type(header).__name__}, not a map", "header")
    version = header.pop("v", None)
    if type(version) is not int or version != SCHEMA_VERSION:  # type(): True == 1
        raise DecodeError(f"schema version {version!r} != {SCHEMA_VERSION}", "version")
    mtype = header.pop("type", None)
    cls = Message.REGISTRY.get(mtype) if type(mtype) is str else None
    if cls is None:
        raise DecodeError(f"unknown message type {mtype!r}", "type")
    if not topic.startswith(cls.PREFIX):
        raise DecodeError(f"topic {topic!r} does not match type {cls.TYPE!r}", "topic")
    ts = header.pop("ts", None)
    if type(ts) not in (int, float) or not math.isfinite(ts):
        raise DecodeError(f"ts {ts!r} missing or not a finite number", "ts")
    layout = cls._layout()
    if not layout.names.issuperset(header):
        raise DecodeError(f"unknown fields {sorted(map(repr, header.keys() - layout.names))} for "
                          f"{cls.TYPE!r}", "unknown_field")
    if not layout.required.issubset(header):
        raise DecodeError(f"missing fields {sorted(layout.required - header.keys())} for "
                          f"{cls.TYPE!r}", "missing_field")
    buffers = frames[2:]
    for nd, (name, kind) in enumerate(layout.arrays):
        header[name] = _array(name, kind, header[name], nd, buffers)
    if len(buffers) != len(layout.arrays):
        raise DecodeError(f"{len(buffers)} array frames for {len(layout.arrays)} array fields", "frames")
    try:
        msg = cls(**header)
    except ValueError as err:
        raise DecodeError(str(err), "invalid") from None
    if msg.topic != topic:
        raise DecodeError(f"topic {topic!r} does not match fields ({msg.topic!r})", "topic")
    return msg, float(ts)


def _array(name: str, kind: Array, ref: Any, nd: int, buffers: list[bytes]) -> np.ndarray:
    """Wire checks of the ``nd``-th array field; its values are checked by the constructor (once)."""
    if type(ref) is not dict or len(ref) != 3:
        raise DecodeError(f"{name}: bad array descriptor {ref!r:.80}", "array")
    idx, dtype, shape = ref.get("nd"), ref.get("dtype"), ref.get("shape")
    if type(idx) is not int or idx != nd or idx >= len(buffers):
        raise DecodeError(f"{name}: buffer index {idx!r} is not {nd} or has no frame "
                          f"({len(buffers)} buffers)", "array")
    if dtype != kind.dtype:
        raise DecodeError(f"{name}: dtype {dtype!r:.20} != {kind.dtype!r}", "array")
    if type(shape) is not list or len(shape) != kind.ndim:
        raise DecodeError(f"{name}: shape {shape!r:.80} is not a list of {kind.ndim} ints", "array")
    expected = kind.np_dtype.itemsize
    for s in shape:
        if type(s) is not int or not 0 <= s < 2**31:  # type(): a bool is no size
            raise DecodeError(f"{name}: bad shape {shape!r:.80}", "array")
        expected *= s
    buf = buffers[idx]
    if len(buf) != expected:
        raise DecodeError(f"{name}: buffer is {len(buf)} bytes, dtype x shape needs {expected}", "array")
    return np.ndarray(shape, kind.np_dtype, buf)  # a view; read-only because the buffer is


def pack_frames(frames: list[bytes]) -> bytes:
    """Multipart frames -> one blob (how the recorder stores an exact bus message)."""
    return msgpack.packb([bytes(f) for f in frames], use_bin_type=True)


def unpack_frames(blob: bytes) -> list[bytes]:
    """Inverse of ``pack_frames``; the frames still need ``decode``."""
    try:
        frames = msgpack.unpackb(blob, raw=False)
    except Exception as err:
        raise DecodeError(f"recorded blob is not a frame list: {type(err).__name__}", "msgpack") from None
    if type(frames) is not list or not all(type(f) is bytes for f in frames):
        raise DecodeError("recorded blob is not a list of byte frames", "frames")
    return frames


def to_jsonable(msg: Message) -> dict[str, Any]:
    """Fields as plain JSON types; arrays become ``{"shape": [...], "dtype": "..."}``."""
    out: dict[str, Any] = {"type": msg.TYPE}
    for name, _ in msg._layout().specs:
        value = getattr(msg, name)
        if isinstance(value, np.ndarray):
            value = {"shape": list(value.shape), "dtype": str(value.dtype)}
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# The message types. Joints are canonical: metres, Y up, right-handed. Missing joints are finite
# (interpolated or held) with confidence 0: never NaN on the wire, never silently zero.

JOINTS = Array("<f4", 3)
CONFIDENCE = Array("<f4", 2, unit=True)


@dataclass(frozen=True)
class SkeletonFrame(Message):
    """``skeleton.frame.<sensor>``: every tracked body of one capture instant (B may be 0)."""
    TYPE = "frame"
    PREFIX = topics.FRAME
    sensor: str = _spec(str)
    seq: int = _spec(COUNT)
    t_capture: float = _spec(float)                  # capture clock, seconds
    layout: str = _spec(str)                         # layout id in capture.layouts
    body_ids: np.ndarray = _spec(Array("<i4", 1))    # [B], unique
    joints: np.ndarray = _spec(JOINTS)               # [B, J, 3] metres
    confidence: np.ndarray = _spec(CONFIDENCE)       # [B, J] in [0, 1]

    def validate(self) -> None:
        n = len(self.body_ids)
        if self.joints.shape[0] != n or self.joints.shape[2] != 3:
            raise ValueError(f"joints shape {self.joints.shape} does not fit {n} bodies x J x 3")
        if self.confidence.shape != self.joints.shape[:2]:
            raise ValueError(f"confidence shape {self.confidence.shape} != {self.joints.shape[:2]}")
        if n > 1 and len(set(self.body_ids.tolist())) != n:
            raise ValueError(f"body_ids {self.body_ids.tolist()} are not unique")

    def _make_topic(self) -> str:
        return topics.frame(self.sensor)


@dataclass(frozen=True)
class SkeletonWindow(Message):
    """``skeleton.window.<sensor>.<body>``: T >= 1 frames of one body, evenly resampled at ``fps``."""
    TYPE = "window"
    PREFIX = topics.WINDOW
    sensor: str = _spec(str)
    body: str = _spec(str)
    seq: int = _spec(COUNT)
    t_start: float = _spec(float)
    t_end: float = _spec(float)
    fps: float = _spec(float)
    layout: str = _spec(str)
    joints: np.ndarray = _spec(JOINTS)                 # [T, J, 3] metres
    confidence: np.ndarray = _spec(CONFIDENCE)         # [T, J] in [0, 1]
    interpolated: np.ndarray = _spec(Array("|b1", 1))  # [T] frame filled across a short gap
    labels: dict = _spec(dict, {})                     # ground truth when the source knows it

    def validate(self) -> None:
        t, j, three = self.joints.shape
        if t < 1 or j < 1 or three != 3:
            raise ValueError(f"joints shape {self.joints.shape} is not T >= 1 x J >= 1 x 3")
        if self.confidence.shape != (t, j):
            raise ValueError(f"confidence shape {self.confidence.shape} != {(t, j)}")
        if self.interpolated.shape != (t,):
            raise ValueError(f"interpolated shape {self.interpolated.shape} != ({t},)")
        if not (self.fps > 0 and self.t_end >= self.t_start):
            raise ValueError(f"need fps > 0 and t_end >= t_start (fps {self.fps}, "
                             f"t {self.t_start}..{self.t_end})")

    def _make_topic(self) -> str:
        return topics.window(self.sensor, self.body)


@dataclass(frozen=True)
class EmotionEvent(Message):
    """``emotion.<sensor>.<body>``: the model's reading of one window."""
    TYPE = "emotion"
    PREFIX = topics.EMOTION
    sensor: str = _spec(str)
    body: str = _spec(str)
    window_seq: int = _spec(COUNT)
    t_start: float = _spec(float)
    t_end: float = _spec(float)
    status: str = _spec(str)                    # "ok" | "insufficient_data" | "error"
    label: str | None = _spec(OPT_STR, None)    # required when status is "ok"
    stable_label: str | None = _spec(OPT_STR, None)
    probs: dict = _spec(dict, {})               # label -> probability, sums to 1 when status ok
    evidence: dict = _spec(dict, {})            # descriptor name -> value
    explanation: str | None = _spec(OPT_STR, None)
    unsupported: list = _spec(list, [])         # explanation claims the descriptors do not support
    mgs: list = _spec(list, [])                 # micro-gestures: {name, t_start, t_end, confidence}
    latency_ms: dict = _spec(dict, {})          # stage -> ms; "total" = window received -> published

    def validate(self) -> None:
        if self.status not in ("ok", "insufficient_data", "error"):
            raise ValueError(f"status {self.status!r} unknown (ok, insufficient_data, error)")
        if self.t_end < self.t_start:
            raise ValueError(f"t_end {self.t_end} < t_start {self.t_start}")
        for k, p in self.probs.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ValueError(f"probs[{k!r}] = {p!r} is not a probability")
        if self.status == "ok":
            if self.label is None:
                raise ValueError("status 'ok' needs a label")
            if self.probs and abs(sum(self.probs.values()) - 1) > 1e-3:
                raise ValueError(f"probs sum to {sum(self.probs.values()):.4f}, not 1")
        for k, ms in self.latency_ms.items():
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
                raise ValueError(f"latency_ms[{k!r}] = {ms!r} is not a duration")

    def _make_topic(self) -> str:
        return topics.emotion(self.sensor, self.body)


@dataclass(frozen=True)
class EmotionText(Message):
    """``emotion.text.<sensor>.<body>``: explanation tokens as they are generated."""
    TYPE = "emotion_text"
    PREFIX = topics.EMOTION_TEXT
    sensor: str = _spec(str)
    body: str = _spec(str)
    window_seq: int = _spec(COUNT)
    text: str = _spec(str)
    done: bool = _spec(bool, False)

    def _make_topic(self) -> str:
        return topics.emotion_text(self.sensor, self.body)


@dataclass(frozen=True)
class Status(Message):
    """``status.<component>``: heartbeat of every process."""
    TYPE = "status"
    PREFIX = topics.STATUS
    component: str = _spec(str)
    state: str = _spec(str)                  # "running" | "ended" | "disconnected" | "error" | ...
    seq: int = _spec(COUNT, 0)
    rate_hz: float = _spec(Scalar(float, lo=0), 0.0)
    drops: int = _spec(COUNT, 0)
    queue_depth: int = _spec(COUNT, 0)
    counters: dict = _spec(dict, {})         # free-form numbers: overruns, decode errors by reason
    message: str | None = _spec(OPT_STR, None)

    def _make_topic(self) -> str:
        return topics.status(self.component)


_MAX_ARRAYS = max(len(cls._layout().arrays) for cls in Message.REGISTRY.values())
