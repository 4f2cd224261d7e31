"""The source interface and the URI-scheme registry.

A source yields ``Frame``s: every tracked body at one capture instant, already converted to the
canonical space (metres, Y up, right-handed) in the source's own ``layout``. Sources are
registered by URI scheme in ``SCHEMES`` with their module path, so listing them imports nothing
and a source's SDK is only imported when that source is opened. Fakes and replays register
exactly like real sensors.

URIs: ``scheme:rest`` or ``scheme://host:port``; options as a query string, e.g.
``synthetic:?bodies=3&seed=7`` or ``bvh:walk.bvh?scale=0.01``.
"""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import ClassVar, Iterator
from urllib.parse import parse_qsl

import numpy as np

from bodytalk.capture.layouts import Layout


@dataclass
class Frame:
    """All bodies seen at one capture instant (canonical space, source layout)."""
    t: float                       # capture time in seconds on the source's clock
    body_ids: np.ndarray           # [B] int32, stable while a body is tracked
    joints: np.ndarray             # [B, J, 3] float32 metres
    confidence: np.ndarray         # [B, J] float32 in [0, 1]; 0 = not tracked, ~0.5 = inferred
    labels: dict[int, dict] = field(default_factory=dict)  # body id -> ground truth, if known


class SourceError(RuntimeError):
    """A source could not be opened or read; the message says what to do."""


class Source(abc.ABC):
    """One skeleton source. Subclasses set ``scheme``, ``help`` and ``example``."""

    scheme: ClassVar[str]
    help: ClassVar[str]
    example: ClassVar[str]
    live: ClassVar[bool] = False  # a live sensor paces itself; files are paced by the runner

    def __init__(self, target: str, options: dict[str, str]) -> None:
        self.target = target
        self.options = options
        self.layout: Layout | None = None  # set by open()
        self.fps: float = 30.0             # native rate

    @property
    def sensor(self) -> str:
        """Sensor name used in topics (overridable with ``?sensor=NAME``)."""
        return self.options.get("sensor", self.scheme.replace("-", "_"))

    @abc.abstractmethod
    def open(self) -> None:
        """Open files or devices; import SDKs here; set ``layout`` and ``fps``."""

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends."""

    def close(self) -> None:
        """Release devices and files."""

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def endless(self) -> str | None:
        """None when the source ends by itself; else how to bound it (training and evaluation read
        every frame of their data, so they refuse a source that never ends)."""
        if self.live:
            return ("it is a live sensor: record a take first (bodytalk capture + bodytalk record "
                    "--out take.mcap) and use session:take.mcap")
        return None

    def option(self, name: str, default, cast=str):
        """A typed ``?name=value`` option with a clear error when it does not parse."""
        if name not in self.options:
            return default
        try:
            return cast(self.options[name])
        except ValueError:
            raise SourceError(f"{self.scheme}: option {name}={self.options[name]!r} is not a "
                              f"valid {cast.__name__}") from None


# scheme -> (module, class). Listing needs no import; opening imports only that module.
SCHEMES: dict[str, tuple[str, str]] = {
    "synthetic": ("bodytalk.capture.sources.synthetic.source", "SyntheticSource"),
    "bvh": ("bodytalk.capture.sources.bvh", "BVHSource"),
    "kinect-csv": ("bodytalk.capture.sources.kinect_csv", "KinectCSVSource"),
    "ntu": ("bodytalk.capture.sources.ntu", "NTUSource"),
    "c3d": ("bodytalk.capture.sources.c3d", "C3DSource"),
    "session": ("bodytalk.capture.sources.session", "SessionSource"),
    # Live sensors (capture/sources/live.py runs their reconnecting loop).
    "kinect2": ("bodytalk.capture.sources.kinect2", "KinectV2Source"),
    "azure-kinect": ("bodytalk.capture.sources.azure_kinect", "AzureKinectSource"),
    "natnet": ("bodytalk.capture.sources.natnet", "NatNetSource"),
    "xsens": ("bodytalk.capture.sources.xsens", "XsensSource"),
    "neuron": ("bodytalk.capture.sources.neuron", "NeuronSource"),
    "rokoko": ("bodytalk.capture.sources.rokoko", "RokokoSource"),
    "lsl": ("bodytalk.capture.sources.lsl", "LSLSource"),
    "osc": ("bodytalk.capture.sources.osc", "OSCSource"),
    "webcam": ("bodytalk.capture.sources.mediapipe_pose", "WebcamSource"),
    "video": ("bodytalk.capture.sources.mediapipe_pose", "VideoSource"),
}


def register(scheme: str, module: str, cls: str) -> None:
    """Register a source (plugins and test fakes use this exactly like built-ins)."""
    SCHEMES[scheme] = (module, cls)


def parse_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``'bvh:a.bvh?scale=0.01'`` -> ``('bvh', 'a.bvh', {'scale': '0.01'})``."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme:
        raise SourceError(f"source {uri!r} is not a URI: expected SCHEME:TARGET; known schemes: "
                          + ", ".join(sorted(SCHEMES)))
    target, _, query = rest.partition("?")
    if target.startswith("//"):
        target = target[2:]
    return scheme, target, dict(parse_qsl(query, keep_blank_values=True))


def source_class(scheme: str) -> type[Source]:
    if scheme not in SCHEMES:
        raise SourceError(f"unknown source scheme {scheme!r}; known schemes: "
                          + ", ".join(sorted(SCHEMES)) + " (see `bodytalk sources`)")
    module, name = SCHEMES[scheme]
    return getattr(importlib.import_module(module), name)


def create(uri: str) -> Source:
    """A source for ``uri``, not yet opened."""
    scheme, target, options = parse_uri(uri)
    return source_class(scheme)(target, options)
