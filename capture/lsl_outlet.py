"""Lab Streaming Layer outlets for bodytalk, so LabRecorder records it beside EEG, eye tracking...

- ``FrameOutlet``: skeleton frames of one sensor, one LSL stream per body (LSL streams have a
  fixed channel count; bodies come and go), created when the body first appears. Stream name
  ``bodytalk.<sensor>.<body>``, type ``MoCap``, float32 at the sensor's rate; channels
  ``<joint>_X``, ``_Y``, ``_Z`` (metres, canonical space) for every joint of the source layout,
  then ``<joint>_Conf``. The description carries ``<bodytalk>`` with layout, space=canonical,
  sensor and body, so ``lsl:`` reads these streams back without options.
- ``EventOutlet``: emotion events as LSL markers: stream ``bodytalk.emotion``, type
  ``Markers``, one string channel, irregular rate; each marker is the event as JSON.

Samples are stamped by LSL at push time (``local_clock``), LSL's common clock across machines.

``bodytalk lsl`` (``main``) bridges a running bus to LSL: it subscribes to frames and/or emotion
events and republishes them, so neither capture nor the server needs to change::

    bodytalk lsl --sub tcp://127.0.0.1:5555 --frames --events
"""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from bodytalk.capture.layouts import Layout
from bodytalk.stream import schema, security, topics

log = logging.getLogger("bodytalk.lsl")
NEEDS = "the LSL outlet needs pylsl: pip install 'bodytalk[mocap]'"


class LSLUnavailable(RuntimeError):
    """pylsl (or its liblsl) cannot be loaded; the message says what to install."""


def _pylsl():
    try:
        import pylsl
    except (ImportError, RuntimeError) as err:  # pylsl raises RuntimeError when liblsl is missing
        raise LSLUnavailable(f"{NEEDS} ({err})") from None
    return pylsl


def frame_labels(layout: Layout) -> list[str]:
    return ([f"{j}_{a}" for j in layout.joints for a in "XYZ"]
            + [f"{j}_Conf" for j in layout.joints])


class FrameOutlet:
    """Publishes frames (``body_ids [B]``, ``joints [B, J, 3]``, ``confidence [B, J]``) of one
    sensor and layout to LSL, one stream per body."""

    def __init__(self, sensor: str, layout: Layout, fps: float) -> None:
        self.lsl = _pylsl()
        self.sensor, self.layout, self.fps = sensor, layout, fps
        self.outlets: dict[int, object] = {}

    def _outlet(self, body: int):
        if body not in self.outlets:
            n = self.layout.num_joints
            info = self.lsl.StreamInfo(f"bodytalk.{self.sensor}.{body}", "MoCap", 4 * n, self.fps,
                                       self.lsl.cf_float32, f"bodytalk-{self.sensor}-{body}")
            info.set_channel_labels(frame_labels(self.layout))
            info.set_channel_units(["m"] * (3 * n) + ["normalized"] * n)
            info.set_channel_types(["Position"] * (3 * n) + ["Confidence"] * n)
            meta = info.desc().append_child("bodytalk")
            for key, value in (("layout", self.layout.id), ("space", "canonical"),
                               ("sensor", self.sensor), ("body", str(body))):
                meta.append_child_value(key, value)
            self.outlets[body] = self.lsl.StreamOutlet(info)
            log.info("LSL outlet bodytalk.%s.%d", self.sensor, body)
        return self.outlets[body]

    def push(self, body_ids: np.ndarray, joints: np.ndarray, confidence: np.ndarray) -> None:
        for b, body in enumerate(body_ids.tolist()):
            sample = np.concatenate([joints[b].reshape(-1), confidence[b]]).astype(np.float32)
            self._outlet(int(body)).push_sample(sample)

    def close(self) -> None:
        self.outlets.clear()  # pylsl destroys an outlet when its object goes


class EventOutlet:
    """Publishes emotion events as JSON markers on ``bodytalk.emotion``."""

    def __init__(self, name: str = "bodytalk.emotion") -> None:
        lsl = _pylsl()
        info = lsl.StreamInfo(name, "Markers", 1, lsl.IRREGULAR_RATE, lsl.cf_string, f"bodytalk-{name}")
        info.desc().append_child("bodytalk").append_child_value("content", "emotion events as JSON")
        self.outlet = lsl.StreamOutlet(info)

    def push(self, event: schema.EmotionEvent) -> None:
        self.outlet.push_sample([json.dumps(schema.to_jsonable(event), separators=(",", ":"))])

    def close(self) -> None:
        self.outlet = None


def bridge(sub, frames: bool, events: bool, max_messages: int | None = None) -> int:
    """Republish what ``sub`` (a ``Subscriber``) receives until interrupted (or ``max_messages``
    were pushed); returns the number pushed. Frame streams are marked irregular: the bus does
    not carry the sensor's rate."""
    from bodytalk.capture import layouts

    frame_outlets: dict[str, FrameOutlet] = {}
    event_outlet = EventOutlet() if events else None
    pushed = 0
    while max_messages is None or pushed < max_messages:
        got = sub.recv(timeout=1.0)
        msg = got[0] if got is not None else None
        if frames and isinstance(msg, schema.SkeletonFrame):
            if msg.sensor not in frame_outlets:
                frame_outlets[msg.sensor] = FrameOutlet(msg.sensor, layouts.get(msg.layout), 0.0)
            frame_outlets[msg.sensor].push(msg.body_ids, msg.joints, msg.confidence)
        elif event_outlet is not None and isinstance(msg, schema.EmotionEvent):
            event_outlet.push(msg)
        else:
            continue
        pushed += 1
    return pushed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bodytalk lsl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    default_sub = f"{topics.DEFAULT_CAPTURE_ADDR},{topics.DEFAULT_SERVER_ADDR}"
    p.add_argument("--sub", default=default_sub,
                   help="bus address(es), comma-separated (default %(default)s)")
    p.add_argument("--frames", action="store_true", help="republish skeleton frames")
    p.add_argument("--events", action="store_true", help="republish emotion events as markers")
    security.add_arguments(p)
    args = p.parse_args(argv)
    security.configure_from(args)
    if not (args.frames or args.events):
        p.error("give --frames and/or --events")
    from bodytalk.stream.transport import Subscriber

    prefixes = ([topics.FRAME] if args.frames else []) + ([topics.EMOTION] if args.events else [])
    sub = Subscriber(args.sub, prefixes=prefixes)
    try:
        bridge(sub, args.frames, args.events)
    except (LSLUnavailable, KeyError) as err:  # pylsl missing; a frame of an unknown layout
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sub.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
