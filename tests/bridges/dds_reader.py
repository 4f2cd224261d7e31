"""A ROS 2-style DDS reader in its own process, for the bridge tests.

    python tests/bridges/dds_reader.py DOMAIN SECONDS ROS_TOPIC=ROS_TYPE ...

Prints ``ready`` once its readers exist, then one JSON line per sample ``{"topic", "data"}``, and
one line ``{"publication": topic, "type", "user_data", "reliable", "depth"}`` per remote writer
it matches: its endpoint data as discovery delivered it, i.e. what a ROS 2 reader sees.
(The binding's built-in publication topic reader crashes in cyclonedds 11.0.1; matched-publication
data carries the same endpoint record.)"""
from __future__ import annotations

import json
import sys
import time

from cyclonedds.domain import DomainParticipant
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from bodytalk.bridges.ros2 import dds


def main(argv: list[str]) -> int:
    domain, seconds, wanted = int(argv[0]), float(argv[1]), [a.split("=", 1) for a in argv[2:]]
    dp = DomainParticipant(domain)
    readers = {}
    for topic, ros_type in wanted:
        q = dds.qos(ros_type)
        readers[topic] = DataReader(dp, Topic(dp, "rt" + topic, dds.idl_type(ros_type), qos=q), qos=q)
    print("ready", flush=True)
    seen_pubs = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for topic, reader in readers.items():
            for handle in reader.get_matched_publications():
                if handle not in seen_pubs:
                    seen_pubs.add(handle)
                    print(json.dumps(_endpoint(reader.get_matched_publication_data(handle))), flush=True)
            for s in reader.take(N=50):
                if type(s).__name__ == "InvalidSample":  # instance state changes, not data
                    continue
                print(json.dumps({"topic": topic, "data": dds.plain(s)}), flush=True)
        time.sleep(0.005)
    return 0


def _endpoint(ep) -> dict:
    pol = {repr(p).split("(")[0]: p for p in ep.qos}  # "Policy.History.KeepLast": policy
    user_data = pol.get("Policy.Userdata")
    return {"publication": ep.topic_name, "type": ep.type_name,
            "user_data": user_data.data.decode() if user_data else None,
            "reliable": "Policy.Reliability.Reliable" in pol, "volatile": "Policy.Durability.Volatile" in pol,
            "depth": getattr(pol.get("Policy.History.KeepLast"), "depth", None)}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
