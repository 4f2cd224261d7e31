"""``lsl:NAME`` -- one body from a Lab Streaming Layer stream (``pylsl``; its wheel ships liblsl).

The stream's channel labels name the joints: ``<joint>_X``, ``<joint>_Y``, ``<joint>_Z`` and
optionally ``<joint>_Conf`` (case-insensitive), with joint names of a registered layout. The
layout, the coordinate space and the body id come from the stream's description element
``<bodytalk><layout/><space/><body/></bodytalk>`` (what ``capture.lsl_outlet`` writes), else
from options:

- ``layout=ID``: the layout whose joint names the labels use (default: the described one, else
  the first layout whose joints cover every labelled joint)
- ``space=source|canonical``: ``source`` (default for foreign streams) converts from the
  layout's units and axes with ``Layout.to_canonical``; bodytalk's own outlets say canonical
- ``body=N`` (default 0), ``resolve=SECONDS`` to wait for the stream on open (default 5)

Joints the stream lacks get confidence 0. When the outlet goes away the inlet raises (it is
opened without LSL's silent recovery), the link is reported down, and the stream is resolved
again by name with back-off.
"""
from __future__ import annotations

import numpy as np

from bodytalk.capture import layouts
from bodytalk.capture.source import Frame, SourceError
from bodytalk.capture.sources.live import LinkDown, LiveSource, Malformed, import_sdk, make_frame

NEEDS = "lsl needs pylsl: pip install 'bodytalk[mocap]'"
AXES = ("x", "y", "z")
CONF_SUFFIXES = ("conf", "confidence")


def parse_labels(labels: list[str]) -> dict[str, dict[str, int]]:
    """Channel labels -> ``{joint: {"x": channel, "y": ..., "z": ..., "conf": ...}}``."""
    joints: dict[str, dict[str, int]] = {}
    for channel, label in enumerate(labels):
        joint, sep, suffix = label.rpartition("_")
        suffix = suffix.lower()
        if sep and (suffix in AXES or suffix in CONF_SUFFIXES):
            joints.setdefault(joint, {})["conf" if suffix in CONF_SUFFIXES else suffix] = channel
    return {j: c for j, c in joints.items() if all(a in c for a in AXES)}


def guess_layout(joint_names) -> layouts.Layout:
    for layout_id in layouts.known():
        layout = layouts.get(layout_id)
        if set(joint_names) <= set(layout.joints):
            return layout
    raise SourceError(f"lsl: no registered layout has joints {sorted(joint_names)[:5]}...; give ?layout=ID")


class LSLSource(LiveSource):
    scheme = "lsl"
    help = ("Lab Streaming Layer stream NAME (pylsl), channels labelled <joint>_X/_Y/_Z[/_Conf]; "
            "options layout=ID, space=source|canonical, body=N, resolve=SECONDS; "
            + LiveSource.LINK_OPTIONS)
    example = "lsl:bodytalk.kinect2.1"

    _inlet = None

    def setup(self) -> None:
        (self._lsl,) = import_sdk(["pylsl"], NEEDS)
        if not self.target:
            raise SourceError(f"lsl: give the stream name, e.g. {self.example}")
        try:
            inlet, info = self._open_inlet(self.option("resolve", 5.0, float))
        except LinkDown:
            raise SourceError(f"lsl: no stream named {self.target!r} found; start its outlet (check "
                              "that LSL can reach it: same network, lsl_api.cfg KnownPeers)") from None
        inlet.close_stream()
        meta = info.desc().child("bodytalk")
        labels = parse_labels(info.get_channel_labels() or [])
        layout_id = self.option("layout", meta.child_value("layout") or "")
        try:
            self.layout = layouts.get(layout_id) if layout_id else guess_layout(labels)
        except KeyError as err:
            raise SourceError(f"lsl: {err.args[0]}") from None
        self.space = self.option("space", meta.child_value("space") or "source")
        if self.space not in ("source", "canonical"):
            raise SourceError(f"lsl: space={self.space!r}: expected source or canonical")
        self.body = self.option("body", int(meta.child_value("body") or 0), int)
        self.fps = info.nominal_srate() or self.option("fps", 30.0, float)

    def _open_inlet(self, timeout: float):
        """An inlet on the stream and its full info (resolved infos lack the description)."""
        found = self._lsl.resolve_byprop("name", self.target, minimum=1, timeout=timeout)
        if not found:
            raise LinkDown("stream not found")
        # recover=False: a vanished outlet raises LostError instead of blocking in silence.
        inlet = self._lsl.StreamInlet(found[0], max_buflen=2, recover=False)
        try:
            return inlet, inlet.info(timeout=timeout)
        except self._lsl.util.TimeoutError:
            inlet.close_stream()
            raise LinkDown("stream found but its description did not arrive") from None

    def describe(self) -> str:
        return f"lsl:{self.target}"

    def connect(self) -> None:
        self._inlet, info = self._open_inlet(min(self.link.timeout, 2.0))
        labels = parse_labels(info.get_channel_labels() or [])
        n = self.layout.num_joints
        self._xyz = np.zeros((n, 3), np.intp)     # channel of each joint's x, y, z
        self._conf = np.full(n, -1, np.intp)      # channel of its confidence, -1: none
        self._present = np.zeros(n, bool)
        for name, channels in labels.items():
            if name in self.layout.joints:
                j = self.layout.index(name)
                self._xyz[j] = [channels[a] for a in AXES]
                self._conf[j] = channels.get("conf", -1)
                self._present[j] = True
        if not self._present.any():
            raise LinkDown(f"no channel names a joint of layout {self.layout.id}")

    def disconnect(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None

    def receive(self, timeout: float):
        try:
            sample, _ = self._inlet.pull_sample(timeout=timeout)
        except self._lsl.util.LostError:
            raise LinkDown("the outlet went away") from None
        return None if sample is None else np.asarray(sample, np.float32)

    def decode(self, sample: np.ndarray) -> Frame | None:
        if sample.ndim != 1 or len(sample) <= max(self._xyz.max(), self._conf.max()):
            raise Malformed("sample shorter than its channel map")
        joints = np.where(self._present[:, None], sample[self._xyz], 0)          # [J, 3]
        conf = np.where(self._conf >= 0, sample[self._conf], 1) * self._present  # [J]
        if self.space == "source":
            joints = self.layout.to_canonical(joints)
        return make_frame(np.array([self.body]), joints[None], conf[None])
