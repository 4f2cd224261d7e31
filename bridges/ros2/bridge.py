"""``bodytalk ros2``: the bus as ROS 2 topics (REP-155 / ROS4HRI) on DDS, no ROS installation needed.

Subscribes to skeleton frames and emotion events and publishes, on DDS domain ``--domain``
(ROS_DOMAIN_ID), what a ROS 2 Humble/Jazzy node reads with ``ros2 topic echo``:

  /humans/bodies/tracked                   hri_msgs/IdsList   with every frame, and when a body leaves
  /humans/bodies/<id>/expression           hri_msgs/Expression  each emotion event with a reading
  /humans/bodies/<id>/expression_details   std_msgs/String    the event as JSON (probabilities,
                                                              explanation, latency)
  /humans/bodies/<id>/gesture              hri_msgs/Gesture   micro-gestures with an hri constant
  /tf                                      tf2_msgs/TFMessage frames body_<id> and body_<id>/<joint>,
                                                              children of --frame-id (Z up)

Body ids are ``<sensor>_<body>`` and stay the same while the source keeps the body. QoS: reliable,
volatile, keep-last 10 (what a default ROS 2 subscriber matches). The subscriber side needs
hri_msgs installed (``apt install ros-jazzy-hri-msgs``).

Examples:
  bodytalk ros2
  ROS_DOMAIN_ID=7 bodytalk ros2 --sub tcp://10.0.0.5:5555,tcp://10.0.0.5:5556
"""
from __future__ import annotations

import argparse
import logging
import os
import time

from bodytalk.bridges import bus, skeleton
from bodytalk.bridges.extras import ExtraMissing
from bodytalk.bridges.ros2 import messages as m
from bodytalk.stream import schema

log = logging.getLogger("bodytalk.ros2")


class Ros2Bridge(bus.Bridge):
    """Bus messages in, ROS 2 messages out through ``node`` (a ``dds.Node``)."""

    def __init__(self, node, intake, frame_id: str = "bodytalk", forget_after: float = bus.FORGET_AFTER) -> None:
        super().__init__(intake, forget_after)
        self.node, self.frame_id = node, frame_id
        self.latest_ids: dict[str, list[str]] = {}  # sensor -> ids in its latest frame
        self.published = 0

    def _publish(self, topic: str, ros_type: str, msg) -> None:
        self.node.publish(topic, ros_type, msg)
        self.published += 1

    def handle(self, msg: schema.Message, ts: float) -> None:
        if isinstance(msg, schema.SkeletonFrame):
            ids = [str(b) for b in msg.body_ids.tolist()]
            if ids:
                self.latest_ids[msg.sensor] = [skeleton.body_id(msg.sensor, b) for b in ids]
            else:
                self.latest_ids.pop(msg.sensor, None)  # bounded by the sensors that have bodies now
            self._tracked(ts)
            if ids:
                self._publish(m.TF, "tf2_msgs/msg/TFMessage",
                              m.transforms(msg, ts, self.frame_id))
        elif isinstance(msg, schema.EmotionEvent):
            rid = skeleton.body_id(msg.sensor, msg.body)
            expression = m.expression(msg, ts)
            if expression is not None:
                self._publish(m.body_topic(rid, "expression"), m.TYPE_OF_LEAF["expression"], expression)
            self._publish(m.body_topic(rid, "expression_details"), m.TYPE_OF_LEAF["expression_details"],
                          m.details(msg, ts))
            for gesture in m.gestures(msg, ts):
                self._publish(m.body_topic(rid, "gesture"), m.TYPE_OF_LEAF["gesture"], gesture)

    def _tracked(self, ts: float) -> None:
        ids = sorted({i for sensor_ids in self.latest_ids.values() for i in sensor_ids})
        self._publish(m.TRACKED, "hri_msgs/msg/IdsList", m.ids_list(ids, ts))

    def left(self, key: tuple[str, str]) -> None:
        rid = skeleton.body_id(*key)
        sensor_ids = self.latest_ids.get(key[0], [])
        if rid in sensor_ids:  # the sensor stopped sending frames: the body is no longer tracked
            sensor_ids.remove(rid)
            if not sensor_ids:
                del self.latest_ids[key[0]]
            self._tracked(time.time())
        self.node.forget(f"/humans/bodies/{rid}/")
        log.info("body %s left", rid)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk ros2", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    bus.add_bus_arguments(p)
    p.add_argument("--domain", type=int, default=None,
                   help="DDS domain id, as ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)")
    p.add_argument("--frame-id", default="bodytalk",
                   help="TF parent frame of the bodies: the sensor's frame in your robot's tree "
                        "(default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    domain = args.domain if args.domain is not None else os.environ.get("ROS_DOMAIN_ID") or "0"
    if not str(domain).isdigit() or not 0 <= int(domain) <= 232:
        log.error("the DDS domain (--domain or ROS_DOMAIN_ID) must be 0..232, got %r", domain)
        return 2
    args.domain = int(domain)
    from bodytalk.bridges.ros2.dds import DDSUnavailable, Node
    stop = bus.start(args)
    try:
        node = Node(args.domain)
        with bus.subscribe(args) as sub:
            bridge = Ros2Bridge(node, sub, args.frame_id, args.forget_after)
            log.info("ROS 2 bridge: %s -> DDS domain %d (/humans/bodies/...)", args.sub, args.domain)
            bridge.run(args.duration, stop)
    except (ExtraMissing, DDSUnavailable, ValueError) as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        return 130
    log.info("published %d ROS 2 messages", bridge.published)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
