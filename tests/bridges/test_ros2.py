"""``bodytalk ros2`` on loopback DDS: a reader in another process receives every topic with the
ROS 2 names, types, QoS and type hash; the CDR bytes are rosbags' serialisation; a late reader gets
the next event; a killed and restarted bridge heals."""
from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("cyclonedds", reason="the ros2 extra (cyclonedds) is not installed")
pytest.importorskip("rosbags", reason="the ros2 extra (rosbags) is not installed")

from bodytalk.bridges.ros2 import dds, messages as m  # noqa: E402
from bodytalk.bridges.ros2.bridge import Ros2Bridge  # noqa: E402
from bodytalk.stream.transport import Publisher, Subscriber  # noqa: E402
from tests.bridges.messages import event, feeder, frame  # noqa: E402
from tests.helpers import free_addr, start_bodytalk, stop  # noqa: E402

READER = Path(__file__).with_name("dds_reader.py")
# Discovery by unicast on the loopback interface only: no multicast, nothing leaves the machine.
LOOPBACK = ('<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
            '<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto'
            '</ParticipantIndex><Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>')
TOPICS = {m.TRACKED: "hri_msgs/msg/IdsList", m.TF: "tf2_msgs/msg/TFMessage",
          "/humans/bodies/kinect0_3/expression": "hri_msgs/msg/Expression",
          "/humans/bodies/kinect0_3/expression_details": "std_msgs/msg/String",
          "/humans/bodies/kinect0_3/gesture": "hri_msgs/msg/Gesture"}


@pytest.fixture
def domain(monkeypatch) -> int:
    monkeypatch.setenv("CYCLONEDDS_URI", LOOPBACK)
    return random.randrange(100, 232)  # apart from other tests and from ROS nodes on domain 0


class Reader:
    """The DDS reader process; its JSON lines arrive on a queue."""

    def __init__(self, domain: int, seconds: float = 25.0, topics: dict = TOPICS) -> None:
        args = [f"{t}={ty}" for t, ty in topics.items()]
        self.proc = subprocess.Popen([sys.executable, str(READER), str(domain), str(seconds), *args],
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self.lines.get(timeout=20) == "ready"

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip() if line.strip() == "ready" else json.loads(line))

    def until(self, done, feed, timeout: float = 20.0) -> list[dict]:
        """Call ``feed()`` and collect lines until ``done(lines)`` or the timeout."""
        got, end = [], time.monotonic() + timeout
        while time.monotonic() < end and not done(got):
            feed()
            try:
                while True:
                    got.append(self.lines.get(timeout=0.05))
            except queue.Empty:
                pass
        return got

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def samples(lines: list[dict], topic: str) -> list[dict]:
    return [x["data"] for x in lines if x.get("topic") == topic]


@pytest.fixture
def bus():
    addr = free_addr()
    with Publisher(addr) as pub, Subscriber(addr, prefixes=("",)) as sub:
        yield pub, sub


def test_cdr_bytes_are_rosbags_serialisation() -> None:
    ts = 1_700_000_000.25
    store = m.typestore()
    built = [("hri_msgs/msg/Expression", m.expression(event(1), ts)), ("std_msgs/msg/String", m.details(event(1), ts)),
             ("hri_msgs/msg/Gesture", m.gestures(event(1), ts)[0]), ("hri_msgs/msg/IdsList", m.ids_list(["a", "b_2"], ts)),
             ("tf2_msgs/msg/TFMessage", m.transforms(frame(1), ts, "bodytalk"))]
    for ros_type, msg in built:
        assert dds.to_idl(ros_type, msg).serialize() == bytes(store.serialize_cdr(msg, ros_type)), ros_type
    assert dds.dds_type_name("hri_msgs/msg/Expression") == "hri_msgs::msg::dds_::Expression_"


def test_a_reader_in_another_process_receives_every_topic(domain, bus) -> None:
    pub, sub = bus
    bridge = Ros2Bridge(dds.Node(domain), sub)
    reader = Reader(domain)
    feed = feeder(pub, bridge)
    try:
        lines = reader.until(lambda got: all(samples(got, t) for t in TOPICS)
                             and sum("publication" in x for x in got) >= len(TOPICS), feed)
    finally:
        reader.close()
    for topic in TOPICS:
        assert samples(lines, topic), f"nothing received on {topic}"
    assert samples(lines, m.TRACKED)[-1]["ids"] == ["kinect0_3"]
    expr = samples(lines, "/humans/bodies/kinect0_3/expression")[-1]
    assert expr["expression"] == "scared" and expr["confidence"] == pytest.approx(0.6)
    assert expr["valence"] == pytest.approx(0.6 * -0.7 + 0.4 * -0.7) and expr["arousal"] == pytest.approx(0.6 * 0.7 + 0.4 * -0.4)
    assert samples(lines, "/humans/bodies/kinect0_3/gesture")[-1]["gesture"] == 2  # ARMS_CROSSED
    extra = json.loads(samples(lines, "/humans/bodies/kinect0_3/expression_details")[-1]["data"])
    assert extra["probs"] == {"fearful": 0.6, "sad": 0.4} and extra["explanation"] == "Arms drawn in."
    tf = samples(lines, m.TF)[-1]["transforms"]
    assert [t["child_frame_id"] for t in tf[:2]] == ["body_kinect0_3", "body_kinect0_3/SpineBase"]
    assert tf[0]["header"]["frame_id"] == "bodytalk"
    assert tf[0]["transform"]["translation"] == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.5})
    endpoints = {x["publication"]: x for x in lines if "publication" in x}
    for topic, ros_type in TOPICS.items():
        ep = endpoints["rt" + topic]
        assert ep["type"] == dds.dds_type_name(ros_type)
        assert ep["user_data"] == f"typehash={m.typestore().hash_rihs01(ros_type)};"
        assert ep["reliable"] and ep["volatile"] and ep["depth"] == 10


def test_a_late_reader_gets_the_next_event_only(domain, bus) -> None:
    pub, sub = bus
    bridge = Ros2Bridge(dds.Node(domain), sub)
    topic = "/humans/bodies/kinect0_3/expression_details"
    for n in range(1, 6):  # published before any reader exists: volatile, so never delivered
        pub.send(event(n))
        while bridge.step(0.2):
            pass
    assert bridge.published  # expression, details and gesture of the events the bus delivered
    reader = Reader(domain, topics={topic: TOPICS[topic]})
    seq = iter(range(6, 10_000))
    try:
        lines = reader.until(lambda got: samples(got, topic), lambda: (pub.send(event(next(seq))), bridge.step(0.05)))
    finally:
        reader.close()
    seqs = [json.loads(s["data"])["window_seq"] for s in samples(lines, topic)]
    assert seqs and min(seqs) >= 6


def test_killing_and_restarting_the_bridge_heals(domain) -> None:
    addr = free_addr()
    topic = "/humans/bodies/kinect0_3/expression_details"
    args = ["ros2", "--sub", addr, "--domain", domain, "--duration", 60]
    with Publisher(addr) as pub:
        reader = Reader(domain, seconds=50, topics={topic: TOPICS[topic]})
        seq = iter(range(1, 100_000))
        sent = {"n": 0}

        def feed() -> None:
            sent["n"] = next(seq)
            pub.send(event(sent["n"]))
            time.sleep(0.02)

        try:
            bridge = start_bodytalk(args)
            first = reader.until(lambda got: samples(got, topic), feed)
            assert samples(first, topic), stop(bridge)
            bridge.kill()
            bridge.wait(10)
            killed_at = sent["n"]
            bridge = start_bodytalk(args)
            after = reader.until(lambda got: samples(got, topic), feed)
            stop(bridge)
        finally:
            reader.close()
    seqs = [json.loads(s["data"])["window_seq"] for s in samples(after, topic)]
    assert seqs and min(seqs) > killed_at
