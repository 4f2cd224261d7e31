"""Recording past MCAP's channel limit, onto a full disk, and reading after a flipped byte."""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from bodytalk.stream import topics
from bodytalk.stream.session_file import (EXACT_CHANNELS, MAX_CHANNELS, SessionFileError, SessionReader,
                                          SessionWriter)
from bodytalk.stream.sessions import info
from tests.helpers import REPO_ROOT, free_addr, run_bodytalk
from tests.stream.test_recording import SteadyPublisher, bus_message, write_session

T0 = 1_700_000_000_000_000_000


def test_more_topics_than_mcap_has_channel_ids(tmp_path):
    path = tmp_path / "many.mcap"
    n = MAX_CHANNELS + 4_465      # 70,000 distinct topics: exact, then family, then "*" channels
    sent = [[f"skeleton.window.k{i}.1".encode(), str(i).encode()] for i in range(n)]
    with SessionWriter(path, chunk_size=1 << 20) as w:
        for i, frames in enumerate(sent):
            w.write(frames, log_time=T0 + i)
    reader = SessionReader(path)
    got = [r.frames for r in reader.records()]
    assert got == sent and not reader.truncated
    assert len(w._channels) == MAX_CHANNELS
    assert "*" in w._channels and f"skeleton.window.k{EXACT_CHANNELS}.*" in w._channels
    only = list(SessionReader(path).records("skeleton.window.k69999."))
    assert [r.frames for r in only] == [sent[69_999]]


def test_a_new_topic_past_the_exact_channels_shares_its_familys(tmp_path):
    path = tmp_path / "family.mcap"
    sent = [[f"skeleton.window.k0.{i}".encode(), str(i).encode()] for i in range(6)]
    with SessionWriter(path, exact_channels=2) as w:
        for i, frames in enumerate(sent):
            w.write(frames, log_time=T0 + i)
    assert set(w._channels) == {"skeleton.window.k0.0", "skeleton.window.k0.1", "skeleton.window.k0.*"}
    assert [r.topic for r in SessionReader(path).records()] == [f[0].decode() for f in sent]


def test_a_full_device_is_one_clear_error():
    with pytest.raises(SessionFileError, match="No space left on device"):
        SessionWriter("/dev/full")


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))


def test_record_on_a_full_disk_stops_with_one_line_and_a_readable_file(tmp_path):
    addr, path = free_addr(), tmp_path / "full.mcap"
    publisher = SteadyPublisher(addr, rate=500.0)
    publisher.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "bodytalk.cli", "record", "--sub", addr, "--out", str(path),
                               "--duration", "30"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=60, preexec_fn=_limit_file_size)
    finally:
        publisher.finish()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "File too large" in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "ERROR" in line]) == 1
    reader = SessionReader(path)
    got = list(reader.records())
    assert got and reader.truncated


def _chunks(path) -> list[tuple[int, int]]:
    """(offset, length) of each chunk record."""
    data, pos, out = path.read_bytes(), 8, []
    while pos + 9 <= len(data) and data[pos] != 0x0F:   # up to DATA_END
        length = int.from_bytes(data[pos + 1:pos + 9], "little")
        if data[pos] == 0x06:
            out.append((pos, length))
        pos += 9 + length
    return out


@pytest.mark.parametrize("where", ["payload", "length"])
def test_a_flipped_byte_loses_one_chunk_not_the_rest(tmp_path, where):
    path = tmp_path / "s.mcap"
    messages = [bus_message(i) for i in range(600)]
    with SessionWriter(path, chunk_size=8_000) as w:
        for i, frames in enumerate(messages):
            w.write(frames, log_time=T0 + i)
    chunks = _chunks(path)
    assert len(chunks) > 10
    at, length = chunks[len(chunks) // 2]
    data = bytearray(path.read_bytes())
    data[at + 9 + length // 2 if where == "payload" else at + 3] ^= 0x10
    path.write_bytes(bytes(data))
    reader = SessionReader(path)
    got = [r.frames for r in reader.records()]
    missing = len(messages) - len(got)
    assert 0 < missing < 100 and got[-1] == messages[-1]
    assert all(g in messages for g in got)
    assert reader.lost_chunks == 1 and not reader.truncated
    if where == "payload":
        assert reader.lost_messages == missing
    summary = info(str(path))
    assert summary["lost_chunks"] == 1 and summary["messages"] == len(got)
    out = run_bodytalk(["sessions", "info", str(path)])
    assert out.returncode == 0 and "chunks skipped" in out.stdout


def test_sessions_info_escapes_control_characters_in_topics(tmp_path):
    path = tmp_path / "evil.mcap"
    evil = "x.\x1b]0;owned\x07\x1b[2J\x9b31m[bold]"
    write_session(path, [[evil.encode(), b"payload"], bus_message(0)])
    out = run_bodytalk(["sessions", "info", str(path)])
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\x9b" not in out.stdout
    assert "\\x1b]0;owned" in out.stdout and "[bold]" in out.stdout
    assert json.loads(run_bodytalk(["sessions", "info", str(path), "--json"]).stdout)["topics"][evil] == 1
    assert topics.printable("ok.topic") == "ok.topic"
