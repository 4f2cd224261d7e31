"""Every message on the bus: frozen dataclasses with encode/decode and validation.

Wire format (one ZeroMQ multipart message):
  frame 0  topic, utf-8 (dotted; see ``topics``)
  frame 1  msgpack map: ``v`` schema version, ``type``, ``ts`` sender wall clock (s), the fields;
           a numpy array field is ``{"nd": i, "dtype": "<f4", "shape": [...]}`` pointing at ...
  frame 2+ raw array buffers, C order; the i-th array field (declaration order) is ``nd`` i.

This module is the only place that touches msgpack. ``decode`` never trusts its input: anything
malformed raises ``DecodeError`` whose ``reason`` is a short fixed key (for drop counters) and whose
text says what was wrong. Decode checks the wire (frame count, sizes, utf-8 topic, version, type,
``ts``, array descriptors against the field's exact dtype and rank and the buffer's exact size);
the values are then checked once, by the same constructor a producer uses (see ``fields``).
The header holds ``v``, ``type``, ``ts`` and the type's fields, nothing else: an unknown key is
rejected (a typo must not drop data silently). A new field with a default keeps older messages
and recordings readable; a change that breaks them bumps ``SCHEMA_VERSION``. A field added later
is declared ``omit_default``: encode leaves it out while it holds its default, so older receivers
also decode the new sender's ordinary messages (only a message that uses the field is refused
by them, as ``unknown_field``).
Arrays of a decoded message are read-only views of the received buffers.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from bodytalk.stream import topics
from bodytalk.stream.fields import (  # noqa: F401  (Array, Scalar, MAX_NESTING: part of this API)
    COUNT, MAX_NESTING, OPT_FLOAT, OPT_STR, Array, Message, Scalar, spec)

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 60 s window of 32 joints is < 1 MB; anything near this is hostile
MAX_HEADER_BYTES = 1024 * 1024


class DecodeError(ValueError):
    """A message that failed validation; ``str(err)`` is the reason that gets logged and ``reason``
    a short fixed key ("version", "array", ...) for drop counters."""

    # Every ``reason`` decode gives: drop counters (and status messages) never grow beyond these.
    REASONS = frozenset({"frames", "oversize", "topic", "msgpack", "header", "version", "type", "ts",
                         "unknown_field", "missing_field", "array", "invalid"})

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


def encode(msg: Message, ts: float | None = None) -> list[bytes]:
    """Message -> multipart frames ``[topic, header, *buffers]`` (buffers are zero-copy views)."""
    if ts is None:
        ts = time.time()
    elif isinstance(ts, bool) or not (isinstance(ts, (int, float)) and math.isfinite(ts)):
        raise ValueError(f"ts must be a finite number, got {ts!r}")
    header: dict[str, Any] = {"v": SCHEMA_VERSION, "type": msg.TYPE, "ts": ts}
    buffers: list[Any] = []
    values = msg.__dict__
    table = msg.fields_table()
    omitted = table.omitted
    for name, kind in table.specs:
        value = values[name]
        if omitted and name in omitted and value == omitted[name]:
            continue
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
    table = cls.fields_table()
    if not table.names.issuperset(header):
        unknown = sorted(map(repr, itertools.islice(header.keys() - table.names, 5)))  # bounded work
        raise DecodeError(f"unknown fields {unknown} for {cls.TYPE!r}", "unknown_field")
    if not table.required.issubset(header):
        raise DecodeError(f"missing fields {sorted(table.required - header.keys())} for "
                          f"{cls.TYPE!r}", "missing_field")
    buffers = frames[2:]
    for nd, (name, kind) in enumerate(table.arrays):
        header[name] = _array(name, kind, header[name], nd, buffers)
    if len(buffers) != len(table.arrays):
        raise DecodeError(f"{len(buffers)} array frames for {len(table.arrays)} array fields", "frames")
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
    for name, _ in msg.fields_table().specs:
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
# A padded window (a stretch shorter than the window, see capture.windowing) says so on every
# message about it; ``real_frames`` counts its frames of real motion (None: all of them).
# (Functions, not shared constants: a dataclass field object belongs to one class.)
def _padded() -> Any:
    return spec(bool, False, omit_default=True)


def _real_frames() -> Any:
    return spec(Scalar(int, optional=True, lo=1), None, omit_default=True)


def _check_padding(padded: bool, real_frames: int | None, frames: int | None) -> None:
    if padded != (real_frames is not None):
        raise ValueError(f"padded={padded} needs real_frames {'set' if padded else 'None'}, got {real_frames!r}")
    if padded and frames is not None and real_frames >= frames:
        raise ValueError(f"real_frames {real_frames} of a padded window must be < its {frames} frames")


@dataclass(frozen=True)
class SkeletonFrame(Message):
    """``skeleton.frame.<sensor>``: every tracked body of one capture instant (B may be 0)."""
    TYPE = "frame"
    PREFIX = topics.FRAME
    sensor: str = spec(str)
    seq: int = spec(COUNT)
    t_capture: float = spec(float)                  # capture clock, seconds
    layout: str = spec(str)                         # layout id in capture.layouts
    body_ids: np.ndarray = spec(Array("<i4", 1))    # [B], unique
    joints: np.ndarray = spec(JOINTS)               # [B, J, 3] metres
    confidence: np.ndarray = spec(CONFIDENCE)       # [B, J] in [0, 1]

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
    sensor: str = spec(str)
    body: str = spec(str)
    seq: int = spec(COUNT)
    t_start: float = spec(float)
    t_end: float = spec(float)
    fps: float = spec(float)
    layout: str = spec(str)
    joints: np.ndarray = spec(JOINTS)                 # [T, J, 3] metres
    confidence: np.ndarray = spec(CONFIDENCE)         # [T, J] in [0, 1]
    interpolated: np.ndarray = spec(Array("|b1", 1))  # [T] frame filled across a short gap
    labels: dict = spec(dict, {})                     # ground truth when the source knows it
    padded: bool = _padded()                          # frames after real_frames reflect the real ones
    real_frames: int | None = _real_frames()

    def validate(self) -> None:
        t, j, three = self.joints.shape
        _check_padding(self.padded, self.real_frames, t)
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
    sensor: str = spec(str)
    body: str = spec(str)
    window_seq: int = spec(COUNT)
    t_start: float = spec(float)
    t_end: float = spec(float)                 # capture clock (monotonic in one capture process)
    status: str = spec(str)                    # "ok" | "insufficient_data" | "error"
    # (declared here, not last, so `bodytalk tail` shows them before its line is cut)
    padded: bool = _padded()                   # read from a padded window (a short stretch)
    real_frames: int | None = _real_frames()
    reason: str | None = spec(OPT_STR, None)   # why there is no reading (status not "ok")
    label: str | None = spec(OPT_STR, None)    # required when status is "ok"
    stable_label: str | None = spec(OPT_STR, None)
    probs: dict = spec(dict, {})               # label -> probability, sums to 1 when status ok
    evidence: dict = spec(dict, {})            # descriptor name -> value
    explanation: str | None = spec(OPT_STR, None)
    unsupported: list = spec(list, [])         # explanation claims the descriptors do not support
    mgs: list = spec(list, [])                 # micro-gestures: {name, t_start, t_end, confidence}
    latency_ms: dict = spec(dict, {})          # stage -> ms; "total" = window received -> published
    seq: int = spec(COUNT, 0)                  # this body's event counter at the server: a gap = lost events

    def validate(self) -> None:
        _check_padding(self.padded, self.real_frames, None)
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
            if self.reason is not None:
                raise ValueError("status 'ok' has no reason (a reason says why a window could not be read)")
            if self.probs and abs(sum(self.probs.values()) - 1) > 1e-3:
                raise ValueError(f"probs sum to {sum(self.probs.values()):.4f}, not 1")
        for k, ms in self.latency_ms.items():
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
                raise ValueError(f"latency_ms[{k!r}] = {ms!r} is not a duration")

    def _make_topic(self) -> str:
        return topics.emotion(self.sensor, self.body)


@dataclass(frozen=True)
class EmotionText(Message):
    """``emotion.text.<sensor>.<body>``: explanation text of one window as it is generated, raw (not
    yet grounding-checked: the checked explanation follows on the window's emotion event). Pieces
    0, 1, ... concatenate to the generated text; the last message has ``done`` (and no text)."""
    TYPE = "emotion_text"
    PREFIX = topics.EMOTION_TEXT
    sensor: str = spec(str)
    body: str = spec(str)
    window_seq: int = spec(COUNT)
    text: str = spec(str)
    done: bool = spec(bool, False)
    index: int = spec(COUNT, 0)                # piece number within the window's explanation

    def _make_topic(self) -> str:
        return topics.emotion_text(self.sensor, self.body)


@dataclass(frozen=True)
class Status(Message):
    """``status.<component>``: heartbeat of every process."""
    TYPE = "status"
    PREFIX = topics.STATUS
    component: str = spec(str)
    state: str = spec(str)                  # "running" | "ended" | "disconnected" | "error" | ...
    seq: int = spec(COUNT, 0)
    rate_hz: float = spec(Scalar(float, lo=0), 0.0)
    drops: int = spec(COUNT, 0)
    queue_depth: int = spec(COUNT, 0)
    counters: dict = spec(dict, {})         # free-form numbers: overruns, decode errors by reason
    message: str | None = spec(OPT_STR, None)

    def _make_topic(self) -> str:
        return topics.status(self.component)


@dataclass(frozen=True)
class PromptWork(Message):
    """``work.<sensor>.<body>``: one window read by a tokenizer worker, for the LLM server.

    Travels over PUSH/PULL only. The skeleton tokens become prompt embeddings, so whoever can send
    this message steers the LLM: the server binds its PULL on loopback unless told otherwise."""
    TYPE = "prompt_work"
    PREFIX = topics.WORK
    sensor: str = spec(str)
    body: str = spec(str)
    window_seq: int = spec(COUNT)
    t_start: float = spec(float)
    t_end: float = spec(float)
    model: str = spec(str)                       # checkpoint fingerprint: worker and server must agree
    status: str = spec(str)                      # "ok" | "insufficient_data"
    tokens: np.ndarray = spec(Array("<f4", 2))   # [S, H] projected skeleton tokens; [0, 0] unless ok
    head_logits: np.ndarray = spec(Array("<f4", 1))  # [L] the encoder's label head; [0] unless ok
    evidence: dict = spec(dict, {})              # descriptor name -> value (None: insufficient data)
    valid_share: float = spec(Scalar(float, lo=0), 0.0)  # share of fully valid frames
    evidence_text: str = spec(str, "")           # the descriptor line of the prompt
    mgs: dict = spec(dict, {})                   # micro-gestures (MGResult.to_jsonable, window-relative)
    reason: str | None = spec(OPT_STR, None)     # why the window could not be read
    t_received: float = spec(float, 0.0)         # worker wall clock when the window arrived (s)
    latency_ms: dict = spec(dict, {})            # worker stages -> ms
    padded: bool = _padded()                     # read from a padded window (a short stretch)
    real_frames: int | None = _real_frames()

    def validate(self) -> None:
        _check_padding(self.padded, self.real_frames, None)
        if self.status not in ("ok", "insufficient_data"):
            raise ValueError(f"status {self.status!r} unknown (ok, insufficient_data)")
        if self.t_end < self.t_start:
            raise ValueError(f"t_end {self.t_end} < t_start {self.t_start}")
        if self.status == "ok" and not (self.tokens.size and self.head_logits.size):
            raise ValueError("status 'ok' needs skeleton tokens and head logits")
        if self.status != "ok" and not self.reason:
            raise ValueError(f"status {self.status!r} needs a reason")
        for k, v in self.evidence.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"evidence[{k!r}] = {v!r} is not a number or None")

    def _make_topic(self) -> str:
        return topics.work(self.sensor, self.body)


_MAX_ARRAYS = max(len(cls.fields_table().arrays) for cls in Message.REGISTRY.values())
