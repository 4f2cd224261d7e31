"""``natnet://`` against a loopback NatNet server fake (unicast on 127.0.0.1)."""
import numpy as np
import pytest

pytest.importorskip("natnet", reason="the natnet source needs the natnet package (pip install 'bodytalk[mocap]')")

from bodytalk.capture.layouts_mocap import OPTITRACK  # noqa: E402
from bodytalk.capture.sources.natnet import NAT_CONNECT, NAT_REQUEST_MODELDEF  # noqa: E402
from tests.capture.fakes.natnet import NatNetServer  # noqa: E402
from tests.capture.fakes.reader import SourceReader  # noqa: E402


def _uri(server, extra=""):
    return f"natnet://127.0.0.1?multicast=0&command_port={server.port}{extra}"


def test_skeletons_become_joint_positions_by_forward_kinematics():
    server = NatNetServer(skeletons={1: "Skeleton1", 4: "Bob"}, untracked=frozenset({13}))
    reader = SourceReader(_uri(server))
    try:
        f = reader.take(5)[-1]
    finally:
        reader.close()
        server.stop()
    assert NAT_CONNECT in server.requests and NAT_REQUEST_MODELDEF in server.requests
    assert f.body_ids.tolist() == [1, 4] and f.joints.shape == (2, 21, 3)
    j = {name: f.joints[0, OPTITRACK.index(name)] for name in OPTITRACK.joints}
    # Spine straight up from the hip: 0.1 + 0.2 + 0.25 + 0.1 m to the head.
    np.testing.assert_allclose(j["Head"] - j["Hip"], [0, 0.65, 0], atol=1e-5)
    # The hip's 90° yaw turns the left arm (+x in the bone frames) to -z: 0.05 + 0.12 + 0.28 + 0.25.
    np.testing.assert_allclose(j["LHand"] - j["Chest"], [0, 0.2, -0.7], atol=1e-5)
    assert f.confidence[0, OPTITRACK.index("RHand")] == 0  # tracking invalid
    assert f.confidence[0].sum() == 20
    unified, conf = OPTITRACK.to_unified(f.joints, f.confidence)
    assert unified.shape == (2, 17, 3) and conf[0, 10] == 0 and conf[0, 7] == 1  # r_wrist, l_wrist


def test_global_coordinates_are_taken_as_they_are():
    server = NatNetServer()
    reader = SourceReader(_uri(server, "&coords=global"))
    try:
        f = reader.take(2)[-1]
    finally:
        reader.close()
        server.stop()
    np.testing.assert_allclose(f.joints[0, OPTITRACK.index("Head")], [0, 0.1, 0], atol=1e-6)


def test_malformed_packets_are_counted():
    server = NatNetServer()
    reader = SourceReader(_uri(server))
    try:
        reader.take(2)
        server.extra.put(b"\x07", b"\x07\x00\x10\x00" + b"\x01" * 7, b"\x05\x00\x04\x00\x09\x00\x00\x00\x63")
        while reader.src.counters["malformed"] < 3:
            reader.take(1)
        reader.take(2)
    finally:
        reader.close()
        server.stop()
    assert reader.src.counters["malformed"] == 3


def test_motive_restarts():
    server = NatNetServer()
    reader = SourceReader(_uri(server))
    try:
        reader.take(3)
        server.stop()
        reader.wait_status("disconnected")
        server = NatNetServer(port=server.port)
        assert "reconnected" in reader.wait_status("running")
        assert reader.take(3)[-1].body_ids.tolist() == [1]
    finally:
        reader.close()
        server.stop()


def test_datagrams_from_senders_outside_allow_are_dropped_and_counted():
    import time
    server = NatNetServer()
    reader = SourceReader(_uri(server, "&allow=10.9.9.9&reconnect=1"))
    try:
        deadline = time.monotonic() + 20
        while reader.src.counters["refused_sender"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.src.counters["refused_sender"] > 0 and reader.frames.empty()
    finally:
        reader.close()
        server.stop()
