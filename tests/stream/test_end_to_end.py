"""Processes on loopback: capture -> tail, capture -> record -> sessions info, session -> capture."""
from __future__ import annotations

import json

import numpy as np

from bodytalk.stream import schema
from bodytalk.stream.session_file import SessionWriter
from tests.helpers import free_addr, run_bodytalk, start_bodytalk, stop



def tail_windows(capture_args: list[str], count: int = 4) -> list[dict]:
    """Start ``bodytalk capture ARGS`` and ``bodytalk tail --json`` on windows; return its lines."""
    addr = free_addr()
    tail = start_bodytalk(["tail", "--sub", addr, "--topic", "skeleton.window.", "--count",
                           str(count), "--json"])
    # --loop: the source never runs dry before the tail's subscription arrives.
    capture = start_bodytalk(["capture", *capture_args, "--pub", addr, "--loop", "--duration", "60"])
    try:
        out, err = tail.communicate(timeout=90)
    finally:
        stop(tail)
        _, capture_err = stop(capture)
    assert tail.returncode == 0, err + capture_err
    return [json.loads(line) for line in out.splitlines()]


def test_synthetic_capture_to_tail_json():
    lines = tail_windows(["--source", "synthetic:?bodies=2", "--speed", "0"])
    assert len(lines) == 4
    for line in lines:
        assert line["topic"] == f"skeleton.window.{line['sensor']}.{line['body']}"
        assert line["type"] == "window"
        assert line["joints"] == {"shape": [60, 17, 3], "dtype": "float32"}
        assert line["confidence"]["shape"] == [60, 17]
        assert line["t_end"] > line["t_start"]


def test_synthetic_capture_record_sessions_info(tmp_path):
    addr, path = free_addr(), tmp_path / "synthetic.mcap"
    capture = start_bodytalk(["capture", "--source", "synthetic:?bodies=2", "--pub", addr,
                              "--speed", "4", "--loop", "--duration", "60"])
    try:
        record = run_bodytalk(["record", "--sub", addr, "--out", path, "--duration", "4"], timeout=60)
    finally:
        _, capture_err = stop(capture)
    assert record.returncode == 0, record.stderr + capture_err
    done = run_bodytalk(["sessions", "info", path, "--json"])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    (sensor,) = info["sensors"]
    assert len(info["bodies"][sensor]) == 2
    windows = {t: n for t, n in info["topics"].items() if t.startswith("skeleton.window.")}
    assert {t.rsplit(".", 1)[1] for t in windows} == set(info["bodies"][sensor])
    assert info["topics"][f"skeleton.frame.{sensor}"] > sum(windows.values()) > 0
    assert info["truncated"] is False and info["undecodable"] == 0


def test_recorded_session_is_rewindowed_by_capture(tmp_path):
    """A session's frames go back through capture as ``session:`` and come out as windows."""
    path = tmp_path / "k.mcap"
    rng = np.random.default_rng(0)
    with SessionWriter(path) as w:
        for seq in range(120):  # 4 s of two bodies at 30 fps
            w.write(schema.encode(schema.SkeletonFrame(
                sensor="kin0", seq=seq, t_capture=seq / 30, layout="kinect_v2",
                body_ids=np.array([4, 9], np.int32),
                joints=rng.normal(size=(2, 25, 3)).astype(np.float32),
                confidence=np.ones((2, 25), np.float32))))
    lines = tail_windows(["--source", f"session:{path}", "--speed", "0"])
    assert len(lines) == 4
    assert {line["sensor"] for line in lines} == {"kin0"}
    assert {line["body"] for line in lines} <= {"4", "9"}
    assert all(line["layout"] == "kinect_v2" for line in lines)
    assert all(line["joints"]["shape"] == [60, 17, 3] for line in lines)
