"""Field specs and the ``Message`` base: what every bus message checks when it is constructed.

A message type (see ``schema``) is a frozen dataclass whose fields carry a spec in their metadata
(``spec(str)``, ``spec(Array("<f4", 3))``, ...). ``Message.__post_init__`` runs every spec once,
then the type's cross-field ``validate``, then builds the topic: one validation path for messages
built by a producer and for decoded ones. The per-class field table is built once, so the hot
path never calls ``dataclasses.fields``.

Rules: ints are ints (never bools) within 64 bits; floats are finite (ints are accepted and become
floats); free-form dicts/lists hold JSON types only (str keys, finite floats; no bytes, tuples or
numpy scalars), so a message equals its decoded copy and prints as JSON. Arrays are converted to
the field's dtype when the cast is safe within a kind, made C-ordered, and held read-only: a
caller's array becomes a read-only view (no copy), so do not write to it after building a message.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

MAX_NESTING = 16  # free-form dicts/lists: evidence, labels, micro-gestures are two levels deep
_INT_RANGE = (-2**63, 2**64)  # what msgpack can carry
_ONE_F4 = 0x3F800000          # bit pattern of float32 1.0
_U4 = np.dtype(np.uint32)


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


def spec(kind: Any, default: Any = dataclasses.MISSING, *, omit_default: bool = False) -> Any:
    """A dataclass field checked by ``kind`` (a type is shorthand for ``Scalar(type)``).

    ``omit_default``: the header leaves the field out while it holds its (scalar) default, so a
    receiver built before the field existed still decodes every message that does not use it."""
    if isinstance(kind, type):
        kind = Scalar(kind)
    meta = {"kind": kind, "omit_default": omit_default}
    if omit_default and (default is dataclasses.MISSING or isinstance(default, (dict, list))):
        raise TypeError("omit_default needs a scalar default")
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


OPT_STR = Scalar(str, optional=True)
OPT_FLOAT = Scalar(float, optional=True)
COUNT = Scalar(int, lo=0)  # sequence numbers, counters


@dataclass(frozen=True)
class FieldTable:
    """Per-class field table, built once: the hot paths never call ``dataclasses.fields``."""
    specs: tuple[tuple[str, Any], ...]  # (name, kind) in declaration order
    arrays: tuple[tuple[str, Array], ...]
    names: frozenset[str]
    required: frozenset[str]
    omitted: dict[str, Any]  # name -> the default that ``encode`` leaves out of the header


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
    def fields_table(cls) -> FieldTable:
        table = cls.__dict__.get("_fields_table")
        if table is None:  # built lazily: @dataclass runs after __init_subclass__
            fs = dataclasses.fields(cls)
            specs = tuple((f.name, f.metadata["kind"]) for f in fs)
            table = FieldTable(specs, tuple((n, k) for n, k in specs if isinstance(k, Array)),
                               frozenset(f.name for f in fs),
                               frozenset(f.name for f in fs if f.default is dataclasses.MISSING
                                         and f.default_factory is dataclasses.MISSING),
                               {f.name: f.default for f in fs if f.metadata["omit_default"]})
            cls._fields_table = table
        return table

    def __post_init__(self) -> None:
        values = self.__dict__
        for name, kind in self.fields_table().specs:
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
