"""``rokoko://`` against a loopback Rokoko Studio fake (JSON v3 over UDP)."""
import json

import numpy as np
import pytest

from bodytalk.capture.layouts_mocap import ROKOKO
from tests.capture.fakes.reader import SourceReader
from tests.capture.fakes.rokoko import scene
from tests.capture.fakes.udp import PeriodicSender


@pytest.fixture
def reader():
    r = SourceReader("rokoko://127.0.0.1:0")
    yield r
    r.close()


def test_actors_become_bodies_with_stable_ids(reader):
    sender = PeriodicSender(reader.src.port, scene)
    try:
        frames = reader.take(6)
    finally:
        sender.stop()
    assert all(f.body_ids.tolist() == frames[0].body_ids.tolist() for f in frames)
    assert len(set(frames[0].body_ids.tolist())) == 2
    f = frames[-1]
    assert f.joints.shape == (2, 21, 3) and (f.confidence == 1).all()
    np.testing.assert_allclose(f.joints[0, :, 1], np.arange(21) / 100, atol=1e-6)  # Y up kept
    np.testing.assert_allclose(f.joints[1, :, 0], -0.1, atol=1e-6)  # Unity x right -> x left
    assert ROKOKO.to_unified(f.joints, f.confidence)[1].min() == 1


def test_an_actor_leaving_keeps_the_other_id(reader):
    sender = PeriodicSender(reader.src.port, lambda i: scene(i, ("Ana", "Ben") if i < 5 else ("Ben",)))
    try:
        frames = reader.take(10)
    finally:
        sender.stop()
    ben_first = dict(zip(["Ana", "Ben"], frames[0].body_ids.tolist()))["Ben"]
    assert frames[-1].body_ids.tolist() == [ben_first]


def test_malformed_json_is_counted(reader):
    sender = PeriodicSender(reader.src.port, scene)
    try:
        reader.take(1)
        for bad in (b"{not json", b"\xff\xfe", json.dumps({"version": 2, "actors": []}).encode(),
                    json.dumps({"version": 3, "scene": {"actors": [{"name": "x"}]}}).encode(),
                    json.dumps([1, 2]).encode()):
            sender.send_raw(bad)
        while reader.src.counters["malformed"] < 5:
            reader.take(1)
        reader.take(2)
    finally:
        sender.stop()
    assert reader.src.counters["malformed"] == 5


def test_studio_stops_and_resumes(reader):
    sender = PeriodicSender(reader.src.port, scene)
    reader.take(3)
    sender.stop()
    reader.wait_status("disconnected")
    sender = PeriodicSender(reader.src.port, scene)
    try:
        reader.wait_status("running")
        assert reader.take(3)[-1].joints.shape == (2, 21, 3)
    finally:
        sender.stop()
