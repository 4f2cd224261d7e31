"""``bodytalk tail``: decoded lines (JSON and human), --count, malformed messages counted."""
from __future__ import annotations

import io
import json
import re
import threading
import time

import numpy as np

from bodytalk.stream import schema
from bodytalk.stream.tail import human_line, json_line, run
from bodytalk.stream.transport import Publisher
from tests.helpers import free_addr, run_bodytalk


def window(seq: int) -> schema.SkeletonWindow:
    return schema.SkeletonWindow(
        sensor="k0", body="3", seq=seq, t_start=seq * 0.5, t_end=seq * 0.5 + 2, fps=30.0,
        layout="kinect_v2", joints=np.zeros((60, 17, 3), np.float32),
        confidence=np.ones((60, 17), np.float32), interpolated=np.zeros(60, bool),
        labels={"emotion": "happy"})


def publish_until(addr: str, done: threading.Event) -> None:
    """Alternate a valid window and a malformed message until ``done``."""
    with Publisher(addr) as pub:
        seq = 0
        while not done.is_set():
            pub.send(window(seq))
            pub.send_frames([b"skeleton.window.k0.3", b"\xc1 not msgpack"])
            seq += 1
            time.sleep(0.02)


def test_json_line_has_topic_and_fields():
    line = json.loads(json_line("skeleton.window.k0.3", window(4), 12.5))
    assert line["topic"] == "skeleton.window.k0.3" and line["ts"] == 12.5
    assert line["seq"] == 4 and line["labels"] == {"emotion": "happy"}
    assert line["joints"] == {"shape": [60, 17, 3], "dtype": "float32"}


def test_human_line_is_compact():
    line = human_line("skeleton.window.k0.3", window(4), 0.0)
    assert "skeleton.window.k0.3" in line and "seq=4" in line and "joints=60x17x3" in line
    assert "\n" not in line and len(line) <= 200


def test_tail_subprocess_prints_count_lines_and_drops(tmp_path):
    addr, done = free_addr(), threading.Event()
    publisher = threading.Thread(target=publish_until, args=(addr, done), daemon=True)
    publisher.start()
    try:
        result = run_bodytalk(["tail", "--sub", addr, "--topic", "skeleton.", "--count", "5",
                               "--json"], timeout=60)
    finally:
        done.set()
        publisher.join(5)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5
    assert all(x["topic"] == "skeleton.window.k0.3" and x["type"] == "window" for x in lines)
    seqs = [x["seq"] for x in lines]
    assert seqs == sorted(seqs)
    assert lines[0]["joints"]["shape"] == [60, 17, 3]
    # Between 5 valid windows at least 4 malformed ones arrived: counted and reported at exit.
    dropped = re.search(r"(\d+) dropped as malformed", result.stderr)
    assert dropped is not None, result.stderr
    assert int(dropped.group(1)) >= 4


def test_tail_human_output_stops_after_count():
    addr, done = free_addr(), threading.Event()
    publisher = threading.Thread(target=publish_until, args=(addr, done), daemon=True)
    publisher.start()
    try:
        result = run_bodytalk(["tail", "--sub", addr, "--count", "2"], timeout=60)
    finally:
        done.set()
        publisher.join(5)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("skeleton.window.k0.3" in line for line in lines)


def test_run_skips_timeouts_and_stops_after_count():
    class FakeSub:
        def __init__(self):
            self.queue = [None, (window(0), 1.0), (window(1), 2.0)]

        def recv(self, timeout):
            return self.queue.pop(0)

    out = io.StringIO()
    assert run(FakeSub(), count=2, as_json=True, out=out) == 2
    assert [json.loads(x)["seq"] for x in out.getvalue().splitlines()] == [0, 1]
