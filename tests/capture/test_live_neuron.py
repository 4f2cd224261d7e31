"""``neuron://`` against a loopback Axis Neuron BVH broadcaster (TCP, String format)."""
import numpy as np
import pytest

from bodytalk.capture import source as sources
from bodytalk.capture.source import SourceError
from tests.capture.fakes.neuron import NeuronServer, write_rig
from tests.capture.fakes.reader import SourceReader


@pytest.fixture
def rig(tmp_path):
    return write_rig(tmp_path / "axis_rig.bvh")


def test_frames_follow_the_rig(rig):
    server = NeuronServer(avatar=2)
    reader = SourceReader(f"neuron://127.0.0.1:{server.port}?header={rig}")
    try:
        frames = reader.take(5)
    finally:
        reader.close()
        server.stop()
    f = frames[-1]
    layout = reader.src.layout
    assert layout.id == "bvh-cmu" and f.joints.shape == (1, 19, 3)
    assert f.body_ids.tolist() == [2] and (f.confidence == 1).all()
    hips, head = layout.index("Hips"), layout.index("Head")
    # Rest pose in cm -> metres: the head sits 60 cm above the hips, the left hand 70 cm to the left.
    np.testing.assert_allclose(f.joints[0, head] - f.joints[0, hips], [0, 0.6, 0], atol=1e-5)
    hand = f.joints[0, layout.index("LeftHand")] - f.joints[0, layout.index("Spine1")]
    np.testing.assert_allclose(hand, [0.7, 0.25, 0], atol=1e-5)
    assert {round(float(x.joints[0, hips, 1]), 2) for x in frames} <= {1 + k / 100 for k in range(10)}


def test_garbage_frames_are_counted_and_the_stream_goes_on(rig):
    server = NeuronServer()
    reader = SourceReader(f"neuron://127.0.0.1:{server.port}?header={rig}")
    try:
        reader.take(2)
        server.extra.put(b"0 Avatar00 1 2 3 ||", b"0 Avatar00 " + b"x " * 114 + b"||")
        while reader.src.counters["malformed"] < 2:
            reader.take(1)
        reader.take(3)
    finally:
        reader.close()
        server.stop()
    assert reader.src.malformed_reasons["value count does not match the rig"] == 1
    assert reader.src.counters["malformed"] == 2


def test_axis_restarts(rig):
    server = NeuronServer()
    reader = SourceReader(f"neuron://127.0.0.1:{server.port}?header={rig}")
    try:
        reader.take(3)
        server.stop()
        assert "closed by Axis" in reader.wait_status("disconnected")
        server = NeuronServer(port=server.port)
        assert "reconnected" in reader.wait_status("running")
        assert len(reader.take(3)) == 3
    finally:
        reader.close()
        server.stop()


def test_axis_not_running_yet_then_started(rig):
    server = NeuronServer()
    port = server.port
    server.stop()
    reader = SourceReader(f"neuron://127.0.0.1:{port}?header={rig}")  # open() does not fail
    try:
        assert "cannot connect" in reader.wait_status("disconnected")
        server = NeuronServer(port=port)
        assert len(reader.take(2)) == 2
    finally:
        reader.close()
        server.stop()


def test_without_reconnect_a_refused_connection_is_an_error(rig):
    src = sources.create(f"neuron://127.0.0.1:1?header={rig}&reconnect=0")
    with pytest.raises(SourceError, match="cannot connect"):
        src.open()


def test_header_is_required():
    with pytest.raises(SourceError, match="header=RIG.bvh"):
        sources.create("neuron://127.0.0.1:7001").open()
