"""Shared by the capture tests: run the capture process in-process onto a loopback bus and keep what
it published, and a publisher stand-in for driving ``Capture`` step by step."""
from __future__ import annotations

import threading

from bodytalk.capture import service
from bodytalk.stream import schema
from bodytalk.stream.transport import Publisher, Subscriber
from tests.helpers import free_addr
from tests.stream.wire import connect


def captured(uri: str, **cfg_kw) -> tuple[int, list]:
    """``service.run`` on ``uri`` (CaptureConfig fields in cfg_kw): its exit code and every message a
    subscriber of the bus received."""
    addr = free_addr()
    pub, sub = Publisher(addr), Subscriber(addr, prefixes=[""])
    # Joined before the capture starts: a fixed warm-up alone lost every message now and then on a
    # busy machine (ZeroMQ's slow joiner); the probe is drained before the reader starts.
    connect(pub, sub, schema.Status(component="test_probe", state="running"))
    got, done = [], threading.Event()

    def reader():   # after the run, until the bus has been quiet for half a second
        while (out := sub.recv(timeout=0.5 if done.is_set() else 0.2)) is not None or not done.is_set():
            if out is not None:
                got.append(out[0])

    th = threading.Thread(target=reader)
    th.start()
    try:
        rc = service.run(service.CaptureConfig(source=uri, pub=addr, **cfg_kw), pub=pub)
    finally:
        done.set()
        th.join()
        pub.close()
        sub.close()
    return rc, got
