"""Late joiners (ZeroMQ's clone pattern): the server keeps the latest event per body and answers
a snapshot request with them; events carry a per-body ``seq``, so a subscriber sees losses."""
from __future__ import annotations

import threading
import time

import pytest

import bodytalk
from bodytalk.model.serving.server import ServeConfig, Server
from bodytalk.stream import schema
from bodytalk.stream.transport import Publisher, SnapshotServer, request_snapshot
from tests.model.serving.helpers import ListIntake, synthetic_windows


@pytest.fixture(scope="module")
def windows():
    return synthetic_windows(bodies=2, seconds=4.0)


@pytest.fixture
def served(model, windows):
    """A server that has read every window, with its snapshot endpoint answered in a thread."""
    pub, snap = Publisher("tcp://127.0.0.1:*"), SnapshotServer("tcp://127.0.0.1:*")
    server = Server(ServeConfig(explain=False, path="head"), model, pub, ListIntake(windows), snap)
    while server.step(0):
        pass
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            snap.serve(server.latest_events)
            time.sleep(0.005)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server, pub, snap
    stop.set()
    thread.join(5)
    pub.close()
    snap.close()


def test_events_count_per_body_and_the_snapshot_holds_each_bodys_latest(served, windows):
    server, _, snap = served
    per_body = {b: [w for w in windows if w.body == b] for b in {w.body for w in windows}}
    got = request_snapshot(snap.addr)
    assert sorted((e.body, e.seq, e.window_seq) for e in got) == sorted(
        (b, len(ws) - 1, ws[-1].seq) for b, ws in per_body.items())
    assert all(isinstance(e, schema.EmotionEvent) for e in got)
    only = request_snapshot(snap.addr, prefix=f"emotion.synthetic.{windows[0].body}")
    assert [e.body for e in only] == [windows[0].body]


def test_a_late_subscriber_gets_the_state_first_then_live_events(served, windows):
    server, pub, snap = served
    with bodytalk.subscribe(pub.addr, snapshot=snap.addr) as sub:
        first = [sub.poll(1.0) for _ in range(2)]
        assert sorted(e.body for e in first) == sorted({w.body for w in windows})
        server.intake = ListIntake([windows[0]])
        live = None
        for _ in range(100):   # the SUB may still be joining: publish until one arrives
            server.intake = ListIntake([windows[0]])
            server.step(0)
            if (live := sub.poll(0.05)) is not None:
                break
        assert live is not None and live.body == windows[0].body
        assert live.seq > max(e.seq for e in first if e.body == live.body)


def test_malformed_snapshot_requests_are_counted(served):
    import zmq
    _, _, snap = served
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(snap.addr)
    dealer.send_multipart([b"no", b"envelope", b"x"])
    deadline = time.monotonic() + 5
    while not snap.drops["request"] and time.monotonic() < deadline:
        time.sleep(0.01)
    dealer.close(0)
    assert snap.drops["request"] == 1
    assert request_snapshot(snap.addr) is not None   # and it still answers
