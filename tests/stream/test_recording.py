"""Recording, replay and ``sessions info``: exact bytes, order, crash recovery."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from bodytalk.stream import schema
from bodytalk.stream.replayer import ReplayConfig, run as replay
from bodytalk.stream.session_file import SessionFileError, SessionReader, SessionWriter
from bodytalk.stream.transport import Publisher, Subscriber
from tests.helpers import free_addr, run_bodytalk, start_bodytalk, stop

J = 25  # kinect_v2 joints


def bus_message(i: int) -> list[bytes]:
    """The i-th test message: a skeleton frame, a heartbeat, or bytes no schema would accept
    (the recorder must keep those too). Every message is unique, so it identifies its index."""
    kind = i % 3
    if kind == 0:
        rng = np.random.default_rng(i)
        msg = schema.SkeletonFrame(
            sensor="k0", seq=i, t_capture=i / 30, layout="kinect_v2",
            body_ids=np.array([1, 2], np.int32), joints=rng.normal(size=(2, J, 3)).astype(np.float32),
            confidence=np.ones((2, J), np.float32))
        return [bytes(f) for f in schema.encode(msg, ts=1000.0 + i)]
    if kind == 1:
        return [bytes(f) for f in schema.encode(schema.Status(component="test", state="running", seq=i),
                                                    ts=1000.0 + i)]
    return [b"raw.test", b"\x00\xff not msgpack", str(i).encode()]


def write_session(path, messages: list[list[bytes]], step_ns: int = 2_000_000) -> list[list[bytes]]:
    with SessionWriter(path) as w:
        for i, frames in enumerate(messages):
            w.write(frames, log_time=1_700_000_000_000_000_000 + i * step_ns)
    return messages


class SteadyPublisher(threading.Thread):
    """Publishes bus_message(0), (1), ... at ``rate`` Hz until stopped; remembers send times."""

    def __init__(self, addr: str, rate: float = 200.0) -> None:
        super().__init__(daemon=True)
        self.pub = Publisher(addr)
        self.rate, self.sent_at = rate, []  # sent_at[i] = wall time message i was sent
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            i = len(self.sent_at)
            self.pub.send_frames(bus_message(i))
            self.sent_at.append(time.time())
            time.sleep(1 / self.rate)

    def finish(self) -> None:
        self.halt.set()
        self.join(5)
        self.pub.close()


def recorded_indices(path) -> tuple[list[int], SessionReader]:
    """Index of each recorded message (checked byte-exact against what was sent)."""
    reader = SessionReader(path)
    records = list(reader.records())
    indices = []
    for rec in records:
        i = _index_of(rec.frames)
        assert rec.frames == bus_message(i), f"message {i} was not recorded byte for byte"
        indices.append(i)
    assert [r.log_time for r in records] == sorted(r.log_time for r in records)
    return indices, reader


def _index_of(frames: list[bytes]) -> int:
    if frames[0] == b"raw.test":
        return int(frames[2])
    msg, _ = schema.decode(frames)
    return msg.seq


def wait_until_recording(path, timeout: float = 30) -> None:
    """Block until the recorder has flushed a first message (its subscription is live)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if next(iter(SessionReader(path).records()), None) is not None:
                return
        except SessionFileError:
            pass  # not created yet, or only partly written
        time.sleep(0.1)
    raise AssertionError(f"the recorder wrote nothing to {path} within {timeout} s")


def test_writer_reader_round_trip_is_exact(tmp_path):
    path = tmp_path / "s.mcap"
    messages = write_session(path, [bus_message(i) for i in range(50)])
    reader = SessionReader(path)
    records = list(reader.records())
    assert [r.frames for r in records] == messages
    assert [r.log_time for r in records] == sorted(r.log_time for r in records)
    assert not reader.truncated
    assert reader.metadata["version"]
    only_frames = list(SessionReader(path).records("skeleton.frame."))
    assert [r.frames for r in only_frames] == messages[0::3]


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file_reads_back_a_prefix(tmp_path, keep):
    path = tmp_path / "s.mcap"
    messages = write_session(path, [bus_message(i) for i in range(300)])
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[:int(len(data) * keep)])
    reader = SessionReader(cut)
    got = [r.frames for r in reader.records()]
    assert reader.truncated
    assert got == messages[:len(got)]


def test_not_a_session_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.mcap"
    bad.write_text("hello, not an mcap file")
    with pytest.raises(SessionFileError, match="not an MCAP session file"):
        list(SessionReader(bad).records())
    with pytest.raises(SessionFileError, match="bodytalk record"):
        SessionReader(tmp_path / "missing.mcap")


def test_record_then_replay_preserves_bytes_and_order(tmp_path):
    addr, path = free_addr(), tmp_path / "rec.mcap"
    publisher = SteadyPublisher(addr)
    publisher.start()
    try:
        done = run_bodytalk(["record", "--sub", addr, "--out", path, "--duration", "3"], timeout=60)
    finally:
        publisher.finish()
    assert done.returncode == 0, done.stderr
    assert "recorded" in done.stdout and "messages" in done.stdout
    indices, reader = recorded_indices(path)
    assert not reader.truncated
    assert len(indices) >= 10
    assert indices == list(range(indices[0], indices[0] + len(indices))), "lost or reordered"

    # Replay in a loop so a late-joining subscriber still sees one whole pass.
    recorded = [r.frames for r in SessionReader(path).records()]
    out = free_addr()
    halt = threading.Event()
    with Subscriber(out) as sub:
        worker = threading.Thread(target=replay, daemon=True, args=(
            ReplayConfig(file=str(path), pub=out, speed=4.0, loop=True, warmup=0.2),),
            kwargs={"stop": halt})
        worker.start()
        received: list[list[bytes]] = []
        deadline = time.monotonic() + 30
        while len(received) < 2 * len(recorded) and time.monotonic() < deadline:
            frames = sub.recv_frames(timeout=1.0)
            if frames is not None:
                received.append(frames)
        halt.set()
        worker.join(10)
    start = received.index(recorded[0])
    assert received[start:start + len(recorded)] == recorded


def test_kill_9_loses_at_most_a_second(tmp_path):
    addr, path = free_addr(), tmp_path / "crash.mcap"
    publisher = SteadyPublisher(addr, rate=100.0)
    publisher.start()
    recorder = start_bodytalk(["record", "--sub", addr, "--out", path])
    try:
        wait_until_recording(path)
        time.sleep(2.0)
        os.kill(recorder.pid, signal.SIGKILL)
        killed_at = time.time()
        recorder.wait(10)
    finally:
        publisher.finish()
        stop(recorder)
    assert recorder.returncode == -signal.SIGKILL
    indices, reader = recorded_indices(path)
    assert reader.truncated, "a killed recorder cannot have written the footer"
    assert indices == list(range(indices[0], indices[0] + len(indices)))
    assert killed_at - publisher.sent_at[indices[-1]] <= 1.0

    info = run_bodytalk(["sessions", "info", path, "--json"])
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["truncated"] is True
    replayed = run_bodytalk(["replay", path, "--pub", free_addr(), "--speed", "0"])
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {len(indices)} messages" in replayed.stdout


def test_sessions_info_counts_topics_and_bodies(tmp_path):
    path = tmp_path / "s.mcap"
    window = schema.SkeletonWindow(
        sensor="k0", body="7", seq=0, t_start=0.0, t_end=2.0, fps=30.0, layout="kinect_v2",
        joints=np.zeros((60, 17, 3), np.float32), confidence=np.ones((60, 17), np.float32),
        interpolated=np.zeros(60, bool))
    write_session(path, [bus_message(i) for i in range(30)] + [schema.encode(window)])

    done = run_bodytalk(["sessions", "info", path, "--json"])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["topics"] == {"raw.test": 10, "skeleton.frame.k0": 10, "skeleton.window.k0.7": 1,
                              "status.test": 10}
    assert info["messages"] == 31
    assert info["bodies"] == {"k0": ["1", "2", "7"]}
    assert info["sensors"] == ["k0"] and info["layouts"] == ["kinect_v2"]
    assert info["truncated"] is False
    assert info["duration_s"] == pytest.approx(30 * 0.002)

    table = run_bodytalk(["sessions", "info", path])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any("skeleton.frame.k0" in line and "10" in line.split() for line in lines)
    assert any("bodies" in line and "k0: 1, 2, 7" in line for line in lines)
    assert any("finished" in line for line in lines)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_finishes_the_file(tmp_path, sig):
    addr, path = free_addr(), tmp_path / "stopped.mcap"
    publisher = SteadyPublisher(addr)
    publisher.start()
    # As from a terminal: a suite started in the background (`cmd &`, nohup) hands its children
    # SIGINT ignored, and Python then installs no Ctrl-C handler at all.
    recorder = start_bodytalk(["record", "--sub", addr, "--out", path],
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until_recording(path)
        recorder.send_signal(sig)
        out, err = recorder.communicate(timeout=20)
    finally:
        publisher.finish()
        stop(recorder)
    assert recorder.returncode == 0, err
    assert out.startswith("recorded ")
    indices, reader = recorded_indices(path)
    assert not reader.truncated and len(indices) > 0
