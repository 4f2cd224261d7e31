"""Publishing ROS 2 messages on DDS with ``cyclonedds``, as a ROS 2 node would.

What makes a DDS endpoint look like a ROS 2 one (rmw_cyclonedds_cpp):
- topic name ``rt`` + the ROS name (``/humans/bodies/tracked`` -> ``rt/humans/bodies/tracked``);
- type name ``<pkg>::msg::dds_::<Msg>_``, with the fields of the .msg in order;
- CDR (XCDR1, little endian), which the IDL structs built here produce byte for byte as the
  ``rosbags`` typestore serialises (a test holds them to it);
- ``typehash=RIHS01_<sha256>;`` in the endpoint's USER_DATA: Iron and Jazzy readers log an error
  for a writer without it;
- QoS a default ROS 2 subscriber matches: reliable, volatile, keep-last 10.

The IDL structs are generated from the typestore's field definitions, so the .msg text in
``messages`` is the single description of each type.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

from bodytalk.bridges.extras import need
from bodytalk.bridges.ros2 import messages

EXTRA = messages.EXTRA
DEPTH = 10  # keep-last depth of rclcpp's default QoS profile


def _idl():
    return need("cyclonedds.idl", EXTRA), need("cyclonedds.idl.types", EXTRA)


def dds_type_name(ros_type: str) -> str:
    """``hri_msgs/msg/Expression`` -> ``hri_msgs::msg::dds_::Expression_``."""
    pkg, kind, name = ros_type.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def _base(name: str, bound: int):
    _, t = _idl()
    if name == "string":
        return t.bounded_str[bound] if bound else str
    return {"bool": bool, "byte": t.uint8, "char": t.uint8, "int8": t.int8, "uint8": t.uint8,
            "int16": t.int16, "uint16": t.uint16, "int32": t.int32, "uint32": t.uint32,
            "int64": t.int64, "uint64": t.uint64, "float32": t.float32, "float64": t.float64}[name]


def _field(desc) -> Any:
    """A rosbags field description -> a cyclonedds IDL type annotation."""
    _, t = _idl()
    kind, rest = desc
    kind = getattr(kind, "name", kind)
    if kind == "BASE":
        return _base(*rest)
    if kind == "NAME":
        return idl_type(rest)
    inner, size = rest
    if kind == "ARRAY":
        return t.array[_field(inner), size]
    return t.sequence[_field(inner), size] if size else t.sequence[_field(inner)]


@lru_cache(maxsize=None)
def idl_type(ros_type: str):
    """The cyclonedds IdlStruct of a ROS type, with ROS 2's mangled DDS type name."""
    idl, _ = _idl()
    _, fields = messages.typestore().fielddefs[ros_type]
    return idl.make_idl_struct(ros_type.rsplit("/", 1)[1] + "_", dds_type_name(ros_type),
                               {name: _field(desc) for name, desc in fields})


def to_idl(ros_type: str, msg) -> Any:
    """A rosbags message object -> the matching IdlStruct instance (recursively)."""
    _, fields = messages.typestore().fielddefs[ros_type]
    return idl_type(ros_type)(**{name: _value(desc, getattr(msg, name)) for name, desc in fields})


def _value(desc, value):
    kind, rest = desc
    kind = getattr(kind, "name", kind)
    if kind == "BASE":
        return value.item() if hasattr(value, "item") else value
    if kind == "NAME":
        return to_idl(rest, value)
    inner = rest[0]
    if getattr(inner[0], "name", inner[0]) == "BASE" and hasattr(value, "tolist"):
        return value.tolist()  # numpy arrays of numbers
    return [_value(inner, v) for v in value]


def plain(value):
    """An IdlStruct sample -> plain dicts and lists (for readers and tests)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def qos(ros_type: str):
    """Reliable, volatile, keep-last 10, and the RIHS01 type hash in USER_DATA."""
    q = need("cyclonedds.qos", EXTRA)
    util = need("cyclonedds.util", EXTRA)
    typehash = messages.typestore().hash_rihs01(ros_type)
    return q.Qos(q.Policy.Reliability.Reliable(util.duration(milliseconds=100)),
                 q.Policy.Durability.Volatile, q.Policy.History.KeepLast(DEPTH),
                 q.Policy.Userdata(f"typehash={typehash};".encode()))


class DDSUnavailable(RuntimeError):
    """The DDS domain could not be joined (a bad CYCLONEDDS_URI, no usable network interface)."""


class Node:
    """One DDS participant with a writer per (ROS topic, type), created on first use."""

    def __init__(self, domain_id: int = 0) -> None:
        self.domain = need("cyclonedds.domain", EXTRA)
        self.topic_mod = need("cyclonedds.topic", EXTRA)
        self.pub_mod = need("cyclonedds.pub", EXTRA)
        core = need("cyclonedds.core", EXTRA)
        try:
            self.participant = self.domain.DomainParticipant(domain_id)
        except core.DDSException as err:
            raise DDSUnavailable(f"cannot join DDS domain {domain_id} ({err}); check CYCLONEDDS_URI "
                                 f"and the network interfaces") from None
        self.writers: dict[str, Any] = {}

    def publish(self, ros_topic: str, ros_type: str, msg) -> None:
        writer = self.writers.get(ros_topic)
        if writer is None:
            q = qos(ros_type)
            topic = self.topic_mod.Topic(self.participant, "rt" + ros_topic, idl_type(ros_type), qos=q)
            writer = self.writers[ros_topic] = self.pub_mod.DataWriter(self.participant, topic, qos=q)
        writer.write(to_idl(ros_type, msg))

    def forget(self, prefix: str) -> None:
        """Delete the writers of topics under ``prefix`` (a body that left)."""
        for name in [n for n in self.writers if n.startswith(prefix)]:
            del self.writers[name]  # the binding deletes a DDS entity with its last reference
