"""How bus messages map onto REP-155 topics, without DDS: a node that records what it is given."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="the ros2 extra (rosbags) is not installed")

from bodytalk.bridges.ros2 import messages as m  # noqa: E402
from bodytalk.bridges.ros2.bridge import Ros2Bridge  # noqa: E402
from bodytalk.stream import schema  # noqa: E402
from tests.bridges.messages import event  # noqa: E402


class Node:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []
        self.forgotten: list[str] = []

    def publish(self, topic, ros_type, msg) -> None:
        self.sent.append((topic, ros_type, msg))

    def forget(self, prefix) -> None:
        self.forgotten.append(prefix)


def frame(sensor: str, ids: list[int], layout: str = "kinect_v2", joints: int = 25) -> schema.SkeletonFrame:
    n = len(ids)
    return schema.SkeletonFrame(sensor=sensor, seq=1, t_capture=0.0, layout=layout, body_ids=np.array(ids, np.int32),
                                joints=np.zeros((n, joints, 3), np.float32), confidence=np.ones((n, joints), np.float32))


def test_tracked_lists_the_bodies_of_every_sensor_and_drops_one_that_left() -> None:
    node = Node()
    bridge = Ros2Bridge(node, intake=None)
    bridge.handle(frame("kinect0", [1, 2]), 1.0)
    bridge.handle(frame("cam-2", [7]), 1.0)
    assert [x[2].ids for x in node.sent if x[0] == m.TRACKED][-1] == ["cam_2_7", "kinect0_1", "kinect0_2"]
    bridge.left(("kinect0", "2"))
    assert [x[2].ids for x in node.sent if x[0] == m.TRACKED][-1] == ["cam_2_7", "kinect0_1"]
    assert node.forgotten == ["/humans/bodies/kinect0_2/"]


def test_an_event_without_a_reading_sends_details_only() -> None:
    node = Node()
    ev = schema.EmotionEvent(sensor="k", body="1", window_seq=3, t_start=0.0, t_end=2.0,
                             status="insufficient_data", reason="only 3 of 60 frames have a confident pelvis")
    Ros2Bridge(node, intake=None).handle(ev, 5.0)
    assert [x[0] for x in node.sent] == ["/humans/bodies/k_1/expression_details"]
    assert json.loads(node.sent[0][2].data)["reason"].startswith("only 3 of 60")


def test_labels_map_to_expression_constants_and_valence_arousal() -> None:
    expr = m.expression(event(1), 2.5)
    assert expr.expression == m.typestore().types["hri_msgs/msg/Expression"].SCARED
    assert (expr.header.stamp.sec, expr.header.stamp.nanosec) == (2, 500_000_000)
    unknown = schema.EmotionEvent(sensor="k", body="1", window_seq=1, t_start=0.0, t_end=1.0, status="ok",
                                  label="proud", stable_label="proud", probs={"proud": 0.5, "happy": 0.5})
    expr = m.expression(unknown, 0.0)
    assert expr.expression == "proud" and expr.valence == pytest.approx(0.4) and expr.arousal == pytest.approx(0.25)
    assert m.gestures(unknown, 0.0) == []


def test_an_unknown_layout_still_gives_one_frame_per_joint() -> None:
    tf = m.transforms(frame("k", [1], layout="someone_elses", joints=4), 0.0, "bodytalk")
    assert [t.child_frame_id for t in tf.transforms] == ["body_k_1", "body_k_1/j0", "body_k_1/j1", "body_k_1/j2", "body_k_1/j3"]
