"""Sessions that Foxglove and ``ros2 bag`` open: Foxglove-schema and ROS 2 channels derived from
the bus messages, written next to the exact bus payloads (which stay replayable).

- ``foxglove``: the channels of ``bodytalk foxglove`` (``scene``): protobuf ``foxglove.SceneUpdate``,
  ``foxglove.FrameTransforms``, ``foxglove.Log``, and JSON (with a JSON schema) probabilities;
- ``ros2``: the topics of ``bodytalk ros2`` as ``ros2msg`` schemas and CDR messages
  (hri_msgs/Expression, hri_msgs/IdsList, tf2_msgs/TFMessage, ...).

``bodytalk sessions export IN.mcap --to foxglove[,ros2] OUT.mcap`` converts a recorded session;
``bodytalk record --foxglove`` / ``--ros2`` derives the channels while recording (``Tap``).
"""
from __future__ import annotations

import json
import os

from bodytalk.bridges.foxglove.scene import EMOTION_SCHEMA, Scene
from bodytalk.stream import schema
from bodytalk.stream.session_file import SessionReader, SessionWriter

KINDS = ("foxglove", "ros2")
_JSON_SCHEMA = (EMOTION_SCHEMA["title"], "jsonschema", json.dumps(EMOTION_SCHEMA).encode())


def parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"--to takes {' and/or '.join(KINDS)} (comma-separated), got {text!r}")
    return kinds


class _McapNode:
    """The ``dds.Node`` interface of ``Ros2Bridge``, writing CDR messages to a session file."""

    def __init__(self, writer: SessionWriter) -> None:
        from bodytalk.bridges.ros2 import messages
        self.writer, self.store = writer, messages.typestore()
        self.log_time = 0

    def publish(self, topic: str, ros_type: str, msg) -> None:
        text = self.store.generate_msgdef(ros_type, ros_version=2)[0]
        self.writer.add(topic, "cdr", bytes(self.store.serialize_cdr(msg, ros_type)), self.log_time,
                        schema=(ros_type, "ros2msg", text.encode()))

    def forget(self, prefix: str) -> None:
        """Nothing to release: a file keeps every channel."""


class Tap:
    """Derives the ``kinds`` channels of each bus message into ``writer``."""

    def __init__(self, writer: SessionWriter, kinds: tuple[str, ...], frame_id: str = "bodytalk") -> None:
        self.writer = writer
        self.scene = Scene(frame_id) if "foxglove" in kinds else None
        self.ros2 = self.node = None
        if "ros2" in kinds:
            from bodytalk.bridges.ros2.bridge import Ros2Bridge
            self.node = _McapNode(writer)
            self.ros2 = Ros2Bridge(self.node, intake=None, frame_id=frame_id)
        self.undecodable = 0

    def write(self, frames: list[bytes], log_time: int) -> None:
        try:
            msg, ts = schema.decode(frames)
        except schema.DecodeError:
            self.undecodable += 1  # the bus payload is kept as it is; nothing to derive
            return
        if self.scene is not None:
            for topic, out in self.scene.convert(msg, ts):
                if isinstance(out, dict):
                    self.writer.add(topic, "json", json.dumps(out).encode(), log_time, _JSON_SCHEMA)
                else:
                    s = type(out).get_schema()
                    self.writer.add(topic, "protobuf", out.encode(), log_time, (s.name, s.encoding, s.data))
        if self.ros2 is not None:
            self.node.log_time = log_time
            self.ros2.handle(msg, ts)


def export(src: str, out: str, kinds: tuple[str, ...], progress: bool = True) -> dict:
    """Copy the session ``src`` to ``out`` with the derived channels; returns counts."""
    from tqdm import tqdm

    if os.path.abspath(src) == os.path.abspath(out):
        raise ValueError("the export must go to another file than the session it reads")
    reader = SessionReader(src)
    meta = {**reader.metadata, "exported_from": os.path.basename(src), "derived": ",".join(kinds)}
    with SessionWriter(out, metadata=meta) as writer:
        tap = Tap(writer, kinds)
        for rec in tqdm(reader.records(), desc="export", unit="msg", disable=not progress):
            writer.write(rec.frames, rec.log_time)
            tap.write(rec.frames, rec.log_time)
    return {"bus_messages": writer.count, "derived_messages": writer.derived,
            "undecodable": tap.undecodable, "truncated_input": reader.truncated, "out": out}
