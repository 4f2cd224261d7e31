"""OSC skeleton sender fake (python-osc builders): KinectV2-OSC style per-joint messages."""
from __future__ import annotations

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bodytalk.capture.layouts_known import KINECT_V2_JOINTS


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def joint_messages(frame: int, bodies=("72057594037931101", "72057594037931102")) -> list[bytes]:
    """One message per joint of each body (no bundle): joint k at (frame/100, k/10, 2) m."""
    return [message(f"/bodies/{body}/joints/{name}", frame / 100, k / 10, 2.0,
                    "Inferred" if name == "HandTipLeft" else "Tracked")
            for body in bodies for k, name in enumerate(KINECT_V2_JOINTS)]


def bundle(frame: int, body: str = "7") -> bytes:
    """One body's joints in one bundle, confidence as a number."""
    b = OscBundleBuilder(IMMEDIATELY)
    for k, name in enumerate(KINECT_V2_JOINTS):
        m = OscMessageBuilder(address=f"/skel/{body}/{name}")
        for a in (frame / 100, k / 10, 2.0, 0.75):
            m.add_arg(a)
        b.add_content(m.build())
    return b.build().dgram
