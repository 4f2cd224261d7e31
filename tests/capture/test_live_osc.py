"""``osc://`` against a loopback OSC sender (python-osc)."""
import numpy as np
import pytest

pytest.importorskip("pythonosc", reason="the osc source needs python-osc (pip install 'bodytalk[mocap]')")

from bodytalk.capture.source import SourceError  # noqa: E402
from bodytalk.capture.sources.osc import compile_pattern  # noqa: E402
from tests.capture.fakes.osc import bundle, joint_messages, message  # noqa: E402
from tests.capture.fakes.reader import SourceReader  # noqa: E402
from tests.capture.fakes.udp import PeriodicSender  # noqa: E402


def test_per_joint_messages_form_frames_of_both_bodies():
    reader = SourceReader("osc://127.0.0.1:0")
    sender = PeriodicSender(reader.src.port, joint_messages)
    try:
        frames = reader.take(5)
    finally:
        sender.stop()
        reader.close()
    f = frames[-1]
    assert f.joints.shape == (2, 25, 3) and len(set(f.body_ids.tolist())) == 2
    assert all(x.body_ids.tolist() == f.body_ids.tolist() for x in frames)  # stable ids
    np.testing.assert_allclose(f.joints[0, :, 1], np.arange(25) / 10, atol=1e-6)
    hand_tip = reader.src.layout.index("HandTipLeft")
    assert f.confidence[0, hand_tip] == 0.5 and f.confidence[0, 0] == 1.0


def test_bundles_with_a_custom_pattern():
    reader = SourceReader("osc://127.0.0.1:0?pattern=/skel/{body}/{joint}&layout=kinect_v2")
    sender = PeriodicSender(reader.src.port, bundle)
    try:
        f = reader.take(3)[-1]
        for bad in (b"garbage", message("/other/address", 1.0), message("/skel/7/Elbow", 1.0, 2.0, 3.0),
                    message("/skel/7/Head", "x", 2.0, 3.0), message("/skel/7/Head", 1.0)):
            sender.send_raw(bad)
        while reader.src.counters["malformed"] < 5:
            reader.take(1)
    finally:
        sender.stop()
        reader.close()
    assert f.body_ids.tolist() == [1] and (f.confidence == 0.75).all()
    assert reader.src.malformed_reasons["unknown joint name"] == 1
    assert reader.src.malformed_reasons["address does not match the pattern"] == 1


def test_sender_stops_and_resumes():
    reader = SourceReader("osc://127.0.0.1:0?pattern=/skel/{body}/{joint}")
    sender = PeriodicSender(reader.src.port, bundle)
    try:
        reader.take(2)
        sender.stop()
        reader.wait_status("disconnected")
        sender = PeriodicSender(reader.src.port, bundle)
        reader.wait_status("running")
        assert reader.take(2)[-1].joints.shape == (1, 25, 3)
    finally:
        sender.stop()
        reader.close()


def test_pattern_needs_body_and_joint():
    assert compile_pattern("/a/{body}/b.c/{joint}").match("/a/12/b.c/Head")["joint"] == "Head"
    assert compile_pattern("/a/{body}/b.c/{joint}").match("/a/12/bxc/Head") is None
    with pytest.raises(SourceError, match="exactly one"):
        compile_pattern("/a/{joint}")
