"""``lsl:`` and ``capture.lsl_outlet`` on a loopback-only LSL configuration."""
import json
import os
import queue
import uuid

import numpy as np
import pytest

pylsl = pytest.importorskip("pylsl", reason="the lsl source needs pylsl (pip install 'bodytalk[mocap]')")

from bodytalk.capture import source as sources  # noqa: E402
from bodytalk.capture.layouts_known import AZURE_JOINTS, AZURE_KINECT, KINECT_V2  # noqa: E402
from bodytalk.capture.lsl_outlet import EventOutlet, FrameOutlet, bridge  # noqa: E402
from bodytalk.capture.source import SourceError  # noqa: E402
from bodytalk.capture.sources.lsl import parse_labels  # noqa: E402
from bodytalk.stream import schema  # noqa: E402
from tests.capture.fakes.lsl import ThirdPartyOutlet, loopback_config  # noqa: E402
from tests.capture.fakes.reader import SourceReader  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def loopback_lsl(tmp_path_factory):
    # liblsl reads its configuration once, at first use: set it before any stream exists.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSLAPICFG", str(loopback_config(tmp_path_factory.mktemp("lsl"))))
        yield


def _name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_labels_name_joints_and_axes():
    got = parse_labels(["Head_X", "Head_Y", "Head_Z", "Head_Conf", "Neck_x", "Neck_y", "Trigger"])
    assert got == {"Head": {"x": 0, "y": 1, "z": 2, "conf": 3}}  # Neck lacks z, Trigger no joint


def test_a_foreign_stream_in_source_units():
    name = _name()
    app = ThirdPartyOutlet(name, AZURE_JOINTS[:26])  # no face joints: those get confidence 0
    reader = SourceReader(f"lsl:{name}")
    try:
        f = reader.take(3)[-1]
    finally:
        reader.close()
        app.stop()
    assert reader.src.layout is AZURE_KINECT and reader.src.fps == 100.0
    assert f.joints.shape == (1, 32, 3) and f.body_ids.tolist() == [0]
    np.testing.assert_allclose(f.joints[0, :26, 1], np.arange(26) / 100, atol=1e-6)  # mm Y down -> m Y up
    assert (f.confidence[0, :26] == 1).all() and (f.confidence[0, 26:] == 0).all()


def test_our_outlet_round_trips_through_the_source():
    sensor = _name()
    outlet = FrameOutlet(sensor, KINECT_V2, 30.0)
    joints = np.random.default_rng(0).normal(size=(2, 25, 3)).astype(np.float32)
    conf = np.full((2, 25), 0.5, np.float32)
    outlet.push(np.array([4, 9]), joints, conf)  # creates both body streams
    reader = SourceReader(f"lsl:bodytalk.{sensor}.9")
    try:
        for _ in range(2000):  # bounded: the inlet subscribes a moment after open()
            outlet.push(np.array([4, 9]), joints, conf)
            try:
                f = reader.frames.get(timeout=0.01)
                break
            except queue.Empty:
                continue
        else:
            pytest.fail(f"no frame from our outlet; source error {reader.error!r}")
    finally:
        reader.close()
        outlet.close()
    assert reader.src.layout is KINECT_V2 and reader.src.space == "canonical"
    assert f.body_ids.tolist() == [9]
    np.testing.assert_allclose(f.joints[0], joints[1], atol=1e-6)  # canonical: no conversion
    np.testing.assert_allclose(f.confidence[0], 0.5)


def test_event_markers_are_json():
    name = _name()
    outlet = EventOutlet(name)
    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", name, timeout=10)[0])
    inlet.open_stream(timeout=10)
    event = schema.EmotionEvent(sensor="kinect2", body="1", window_seq=3, t_start=0.0, t_end=2.0,
                                status="ok", label="sad", probs={"sad": 0.8, "happy": 0.2})
    sample = None
    for _ in range(200):  # the first pushes may precede the inlet's subscription
        outlet.push(event)
        sample, _ = inlet.pull_sample(timeout=0.05)
        if sample is not None:
            break
    assert sample is not None
    got = json.loads(sample[0])
    assert got["label"] == "sad" and got["probs"]["sad"] == 0.8 and got["body"] == "1"


def test_outlet_gone_and_back():
    name = _name()
    app = ThirdPartyOutlet(name, AZURE_JOINTS)
    reader = SourceReader(f"lsl:{name}")
    try:
        reader.take(2)
        app.stop()
        reader.wait_status("disconnected")
        app = ThirdPartyOutlet(name, AZURE_JOINTS)
        assert "reconnected" in reader.wait_status("running")
        assert reader.take(2)[-1].joints.shape == (1, 32, 3)
    finally:
        reader.close()
        app.stop()


def test_no_such_stream_is_a_clear_error():
    with pytest.raises(SourceError, match="no stream named"):
        sources.create(f"lsl:{_name()}?resolve=0.5").open()
    assert os.environ["LSLAPICFG"].endswith("lsl_api.cfg")


def test_bus_bridge_republishes_frames_and_events():
    sensor = _name()
    frame = schema.SkeletonFrame(sensor=sensor, seq=0, t_capture=0.0, layout="kinect_v2",
                                 body_ids=np.array([3], np.int32), joints=np.zeros((1, 25, 3), np.float32),
                                 confidence=np.ones((1, 25), np.float32))
    event = schema.EmotionEvent(sensor=sensor, body="3", window_seq=0, t_start=0.0, t_end=2.0,
                                status="insufficient_data")

    class Bus:  # a Subscriber's recv(); looks up the LSL streams while the bridge runs
        queue = [frame, event]
        seen: set = set()

        def recv(self, timeout=None):
            msg = self.queue.pop(0)
            if msg is event:  # the frame was pushed: its outlet exists now
                self.seen = {info.name() for info in pylsl.resolve_streams(wait_time=1.0)}
            return msg, 0.0

    bus = Bus()
    assert bridge(bus, frames=True, events=True, max_messages=2) == 2
    assert f"bodytalk.{sensor}.3" in bus.seen
