"""``xsens://`` against a loopback MVN streamer fake (MXTP02 datagrams)."""
import numpy as np
import pytest

from bodytalk.capture.layouts_mocap import XSENS
from bodytalk.capture.source import SourceError
from tests.capture.fakes.reader import SourceReader
from tests.capture.fakes.udp import PeriodicSender
from tests.capture.fakes.xsens import body_cm, pose_datagram, sample_datagrams


@pytest.fixture
def reader():
    r = SourceReader("xsens://127.0.0.1:0")
    yield r
    r.close()


def test_frames_carry_both_characters_in_canonical_metres(reader):
    sender = PeriodicSender(reader.src.port, sample_datagrams)
    try:
        frames = reader.take(10)
    finally:
        sender.stop()
    assert {int(f.body_ids[0]) for f in frames} == {0, 1}
    f = frames[-1]
    assert f.joints.shape == (1, 23, 3) and f.confidence.shape == (1, 23)
    assert (f.confidence == 1).all()  # both datagrams of the sample arrived
    # MVN Z-up cm -> Y-up metres: segment k is k cm up.
    np.testing.assert_allclose(f.joints[0, :, 1], np.arange(1, 24) / 100, atol=1e-6)
    assert reader.src.layout is XSENS
    unified, conf = XSENS.to_unified(f.joints, f.confidence)
    assert unified.shape == (1, 17, 3) and (conf == 1).all()


def test_missing_segments_get_confidence_zero(reader):
    # Only the first datagram's segments, flagged last: 13..23 never arrive.
    sender = PeriodicSender(reader.src.port, lambda i: pose_datagram(i, 3, body_cm(i)[:12]))
    try:
        (f,) = reader.take(1)
    finally:
        sender.stop()
    assert f.body_ids.tolist() == [3]
    assert (f.confidence[0, :12] == 1).all() and (f.confidence[0, 12:] == 0).all()


def test_malformed_datagrams_are_counted_and_dropped(reader):
    sender = PeriodicSender(reader.src.port, sample_datagrams)
    try:
        reader.take(2)
        good = pose_datagram(0, 0, body_cm(0))
        for bad in (b"MXTP", b"HELLO WORLD, NOT MVN AT ALL" * 2, good[:-5],
                    b"MXTP01" + good[6:], good[:24] + b"\xff" * 3):
            sender.send_raw(bad)
        while reader.src.counters["malformed"] < 5:
            reader.take(1)
        reader.take(3)  # and frames keep coming
    finally:
        sender.stop()
    assert reader.src.counters["malformed"] == 5
    assert reader.src.malformed_reasons["short header"] == 1
    assert reader.src.malformed_reasons["message type 01 (want 02)"] == 1


def test_sender_killed_and_restarted(reader):
    sender = PeriodicSender(reader.src.port, sample_datagrams)
    reader.take(4)
    sender.stop()                                     # MVN stops streaming
    assert "no data" in reader.wait_status("disconnected")
    reader.drain()
    sender = PeriodicSender(reader.src.port, sample_datagrams)  # and comes back
    try:
        assert "reconnected" in reader.wait_status("running")
        assert len(reader.take(4)) == 4
    finally:
        sender.stop()
    assert reader.src.counters["disconnects"] == 1 and reader.src.counters["reconnects"] == 1


def test_port_in_use_is_a_clear_error(reader):
    with pytest.raises(SourceError, match="cannot listen on UDP"):
        SourceReader(f"xsens://127.0.0.1:{reader.src.port}")
