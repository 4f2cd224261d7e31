"""A live source inside the capture process: frames and windows reach the bus, and with
``reconnect=0`` a vanished sender ends capture with a "disconnected" status."""
import threading

from bodytalk.stream import schema
from tests.capture.fakes.udp import PeriodicSender
from tests.capture.fakes.xsens import sample_datagrams
from tests.capture.helpers import captured
from tests.helpers import free_port


def test_xsens_frames_and_windows_on_the_bus():
    port = free_port()  # UDP on the same number is free in practice; the source says so if not
    sender = PeriodicSender(port, sample_datagrams)
    try:
        rc, msgs = captured(f"xsens://127.0.0.1:{port}", warmup=0.5, window=0.5, hop=0.25, duration=1.5)
    finally:
        sender.stop()
    frames = [m for m in msgs if isinstance(m, schema.SkeletonFrame)]
    windows = [m for m in msgs if isinstance(m, schema.SkeletonWindow)]
    assert rc == 0 and frames and frames[0].layout == "xsens" and frames[0].joints.shape == (1, 23, 3)
    assert {w.body for w in windows} == {"0", "1"} and windows[0].joints.shape[1:] == (17, 3)


def test_without_reconnect_silence_ends_capture_as_disconnected():
    port = free_port()
    sender = PeriodicSender(port, sample_datagrams)
    stopper = threading.Timer(1.5, sender.stop)  # the sender dies while capture runs
    stopper.start()
    try:
        rc, msgs = captured(f"xsens://127.0.0.1:{port}?reconnect=0&timeout=0.5", warmup=0.5, window=0.5, hop=0.25)
    finally:
        stopper.join()
    last = [m for m in msgs if isinstance(m, schema.Status)][-1]
    assert rc == 1 and last.state == "disconnected" and "no data" in last.message
