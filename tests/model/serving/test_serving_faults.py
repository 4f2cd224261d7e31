"""Serving under faults: bad windows, a stalled or killed server, a subscriber that stops reading.

The fast tests run worker and server in this process on loopback sockets (threads); the kill and
restart test runs capture, worker and server as real processes and SIGKILLs the server mid-stream.
"""
import contextlib
import dataclasses
import threading

import pytest
import torch
import zmq

from bodytalk.client import Subscription
from bodytalk.model.serving.server import ServeConfig, Server
from bodytalk.model.serving.worker import Tokenizer, Worker, WorkerConfig
from bodytalk.stream import schema, topics
from bodytalk.stream.transport import Publisher, Puller, Pusher, Subscriber
from tests.helpers import Collect, free_addr
from tests.model.serving.helpers import (ListIntake, Processes, encoder_checkpoint, synthetic_windows, unreadable,
                                         wait_for)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def windows():
    return synthetic_windows(bodies=2, seconds=4.0)


@contextlib.contextmanager
def split_pipeline(model):
    """capture PUB (yielded) -> worker thread -> PUSH/PULL -> server thread -> events PUB at ``addr``."""
    cap, work, events = free_addr(), free_addr(), free_addr()
    stop = threading.Event()
    with Publisher(cap) as capture, Publisher(events) as pub, Puller(work) as pull, \
            Subscriber(cap, prefixes=[topics.WINDOW]) as sub, Pusher(work, block=False, immediate=True) as push:
        tokenizer = Tokenizer(model)
        worker = Worker(WorkerConfig(name="t"), tokenizer, sub, push)
        server = Server(ServeConfig(explain=False), model, pub, pull)
        threads = [threading.Thread(target=x.run, kwargs={"stop": stop}) for x in (worker, server)]
        for th in threads:
            th.start()
        try:
            yield capture, events
        finally:
            stop.set()
            for th in threads:
                th.join(30)


def test_a_window_that_fails_validation_yields_an_insufficient_data_event(model, windows):
    with split_pipeline(model) as (capture, events), Subscription(events) as client:
        def first_event():
            capture.send(windows[0])
            return client.poll(0.1)

        wait_for(first_event, 30, "the pipeline to connect")
        capture.send(unreadable(windows[1], seq=777))
        got = wait_for(lambda: (e := client.poll(0.2)) is not None and e.window_seq == 777 and e, 30,
                       "the event of the unreadable window")
    assert got.status == "insufficient_data" and got.label is None and got.probs == {}
    assert (got.sensor, got.body) == (windows[1].sensor, windows[1].body)
    assert "confident" in got.reason   # why, from the worker across the split: no confident joints


def test_a_slow_subscriber_never_slows_the_server(model, windows):
    n = 8000   # well beyond what the publisher's queue and the kernel buffers hold for the slow one
    (template,) = Tokenizer(model).tokenize([(windows[0], 0.0)])
    intake = ListIntake([template] * n)
    addr = free_addr()
    with Publisher(addr) as pub, Subscriber(addr, prefixes=[topics.EMOTION, topics.STATUS], hwm=0) as fast:
        slow = zmq.Context.instance().socket(zmq.SUB)   # connected, never read: small buffers, no reads
        slow.setsockopt(zmq.RCVHWM, 1)
        slow.setsockopt(zmq.RCVBUF, 4096)
        slow.setsockopt(zmq.SUBSCRIBE, b"")
        slow.connect(addr)
        try:
            server = Server(ServeConfig(explain=False, path="head"), model, pub, intake)
            wait_for(lambda: pub.send(schema.Status(component="probe", state="running")) and fast.recv(0.05), 10,
                     "both subscribers to connect")
            while server.step(0):
                pass
            assert server.events == n   # all published while the slow subscriber read nothing
            received = 0
            while received < n and (got := fast.recv(10)) is not None:
                received += isinstance(got[0], schema.EmotionEvent)
            assert received == n   # the reading subscriber lost nothing
            slow_got = 0
            while slow.poll(500):
                slow.recv_multipart()
                slow_got += 1
            assert slow_got < n   # the publisher dropped for the slow one instead of waiting on it
        finally:
            slow.close(linger=0)


def test_a_stalled_server_means_bounded_queues_and_drops_on_status(model, windows):
    """The worker never blocks on a server that stopped reading; what it drops shows up on
    status.server as lost windows once the server reads again."""
    body = [w for w in windows if w.body == windows[0].body][0]
    (template,) = Tokenizer(model).tokenize([(body, 0.0)])

    class Prebuilt:  # the queues are under test, not the encoder: work items are made up front
        model_id = template.model

        def tokenize(self, batch):
            return [dataclasses.replace(template, window_seq=m.seq) for m, _ in batch]

    addr = free_addr()
    with Puller(addr, hwm=4) as pull, Pusher(addr, hwm=4, block=False, immediate=True) as push:
        intake = ListIntake()
        worker = Worker(WorkerConfig(name="t"), Prebuilt(), intake, push)
        seqs = iter(range(10**6))

        def push_next() -> int:   # a window that does not get through is a dropped one, never resent
            intake.msgs.append(dataclasses.replace(body, seq=next(seqs)))
            return worker.step(0)

        wait_for(push_next, 10, "the connection to the server")
        worker.counts.clear()   # from here on the server is stalled: it does not read
        while worker.counts["push_drops"] < 20 and worker.counts["windows"] < 5000:
            push_next()
        assert worker.counts["push_drops"] >= 20 and worker.counts["sent"] < worker.counts["windows"]
        pub = Collect()
        server = Server(ServeConfig(explain=False, path="head"), model, pub, pull)
        while server.step(1.0):   # the server resumes: it reads what the bounded queue held
            pass
        wait_for(push_next, 10, "the worker's next push")   # makes the last drops visible as a gap
        wait_for(lambda: server.step(0.2), 10, "the server to read the new window")
        server.beat(rate_hz=1.0)
    status = pub.of(schema.Status)[-1]
    assert status.counters["lost_windows"] == worker.counts["push_drops"]
    assert status.counters["events"] == worker.counts["sent"] + 1   # + the window that connected


def test_killed_and_restarted_server_capture_and_subscribers_carry_on(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ck = encoder_checkpoint(tmp_path / "ck")
    cap, work, events = free_addr(), free_addr(), free_addr()
    serve = ["serve", "--model", ck, "--work", work, "--pub", events, "--no-explain", "--threads", "1"]
    with Processes() as procs, Subscription(events, silence=2.0) as client, \
            Subscriber(cap, prefixes=[topics.WINDOW]) as windows, \
            Subscriber(events, prefixes=[topics.status("worker_0")]) as statuses:
        procs.start("server", serve)
        procs.start("worker", ["worker", "--model", ck, "--sub", cap, "--work", work, "--name", "0"])
        procs.start("capture", ["capture", "--source", "synthetic:?bodies=2", "--pub", cap])
        first = wait_for(lambda: client.poll(0.5), 120, lambda: "the first event\n" + procs.log("server"))
        assert first.status == "ok"

        procs.kill("server")
        while client.poll(0.3) is not None:    # events published before the kill
            pass
        while windows.recv(0) is not None:     # windows captured before the kill
            pass
        last_seen: dict[str, int] = {}         # body -> newest window seq while the server is down
        while len(last_seen) < 2:              # capture keeps publishing for both bodies
            w = wait_for(lambda: windows.recv(0.5), 20, "a window while the server is down")[0]
            last_seen[w.body] = w.seq
        assert procs.alive("capture") and procs.alive("worker")

        procs.start("server", serve)
        after = wait_for(lambda: client.poll(0.5), 120, lambda: "an event after the restart\n" + procs.log("server"))
        assert after.window_seq > last_seen[after.body]   # fresh windows: the worker kept no backlog
        beat = wait_for(lambda: (s := statuses.recv(0.5)) is not None and s[0].drops > 0 and s[0], 30,
                        "the worker's drop count on the status topic")
        assert beat.counters["push_drops"] > 0 and procs.alive("capture")
