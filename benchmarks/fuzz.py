"""Hostile traffic: random and mutated messages into every decoder and every bound socket of a server.

1. ``schema.decode`` in process: N mutated messages of every type (tests/stream/test_fuzz.py's
   generator: bit flips, truncation, header surgery, random frame counts, garbage).
2. A live emotion server (untrained encoder-only model, head path) on loopback, as deployed:
   - its window SUB: N mutated messages from a PUB, half of them re-topiced as windows so they get
     past the SUB's prefix filter and reach the decoder;
   - a second server's work PULL: N mutated messages from a PUSH (work items among them);
   - its snapshot ROUTER: N / 100 requests with random prefixes and raw garbage envelopes.
Reported: crashes (anything but a counted drop; a dead server thread), drops by reason, refusals,
events published, RSS before and after. PUB/SUB loses what overflows the high-water mark by
design; that count is shown apart.

  PYTHONPATH=. python benchmarks/fuzz.py --messages 100000
"""
from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import psutil
import torch
import zmq

from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.inference import EmotionModel
from bodytalk.model.serving.server import ServeConfig, Server
from bodytalk.stream import schema, topics
from bodytalk.stream.transport import Publisher, Puller, Pusher, SnapshotServer, Subscriber, request_snapshot
from tests.stream.test_fuzz import mutate

sys.path.insert(0, str(Path(__file__).parent))
from report import machine  # noqa: E402


def decode_all(rng: np.random.Generator, n: int) -> tuple[collections.Counter, int]:
    reasons, crashes = collections.Counter(), 0
    for _ in range(n):
        try:
            schema.decode(mutate(rng))
            reasons["ok"] += 1
        except schema.DecodeError as err:
            reasons[err.reason] += 1
        except Exception:  # noqa: BLE001 -- the point of the benchmark: count what escapes
            crashes += 1
    return reasons, crashes


class Running:
    """A Server in a thread; ``died`` holds what killed it, if anything did."""

    def __init__(self, server: Server) -> None:
        self.server, self.stop, self.died = server, threading.Event(), []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run(stop=self.stop)
        except BaseException as err:  # noqa: BLE001
            self.died.append(repr(err))
            traceback.print_exc()
            self.server.intake.close()   # a sender blocked on this server's queue gets an error, not a hang

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=100_000, help="messages per target")
    p.add_argument("--seed", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(1)
    proc, rng = psutil.Process(), np.random.default_rng(args.seed)
    header = machine()
    model = EmotionModel.untrained(ModelConfig.create(with_llm=False), seed=0)
    cfg = ServeConfig(explain=False, path="head")
    capture = Publisher("tcp://127.0.0.1:*", hwm=10_000)
    windows = Running(Server(cfg, model, Publisher("tcp://127.0.0.1:*"),
                             Subscriber(capture.addr, prefixes=[topics.WINDOW], hwm=10_000),
                             SnapshotServer("tcp://127.0.0.1:*")))
    work = Running(Server(cfg, model, Publisher("tcp://127.0.0.1:*"), Puller("tcp://127.0.0.1:*")))
    time.sleep(0.5)
    rss0 = proc.memory_info().rss
    t0 = time.monotonic()

    reasons, decode_crashes = decode_all(rng, args.messages)

    for i in range(args.messages):
        frames = mutate(rng)
        if i % 2:
            frames[0] = f"{topics.WINDOW}fuzz.{i % 7}".encode()
        capture.send_frames(frames)
        if i % 1000 == 999:
            time.sleep(0.05)   # let the server read; PUB drops what overflows the SUB's queue
    with Pusher(work.server.intake.addr) as push:
        for _ in range(args.messages):
            push.send_frames(mutate(rng))

    snap = windows.server.snapshot
    answered = 0
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.connect(snap.addr)
    for i in range(args.messages // 100):
        if i % 2:
            dealer.send_multipart([rng.bytes(int(rng.integers(0, 40))) for _ in range(rng.integers(1, 4))])
        else:
            answered += request_snapshot(snap.addr, prefix=rng.bytes(8).decode("latin-1")) is not None
    dealer.close(0)
    time.sleep(2.0)   # the servers drain their queues
    seconds = time.monotonic() - t0
    alive = [r.thread.is_alive() for r in (windows, work)]
    for r in (windows, work):
        r.close()
    rss1 = proc.memory_info().rss

    def row(name: str, s: Server) -> str:
        errors = {k: v for k, v in s.counts.items() if k.startswith("error_")}
        return (f"| {name} | {s.intake.received:,} | {dict(s.intake.drops)} | {dict(s.refused)} | "
                f"{s.counts['events']:,} | {errors or 0} |")

    received = windows.server.intake.received + windows.server.intake.dropped
    print(f"Measured on {header}.\nCommand: `PYTHONPATH=. python benchmarks/fuzz.py --messages {args.messages} "
          f"--seed {args.seed}` ({seconds:.0f} s).\n")
    print(f"- decode in process: {args.messages:,} messages, {decode_crashes} crashes; by reason {dict(reasons)}")
    print(f"- server threads alive at the end: {alive}; died: {windows.died + work.died or 'none'}")
    print(f"- window SUB: {args.messages - received:,} of {args.messages:,} lost at the PUB/SUB high-water mark "
          "(by design) or filtered by topic prefix")
    print(f"- snapshot ROUTER: {answered} of {args.messages // 200} well-formed requests answered; "
          f"malformed dropped by reason {dict(snap.drops)}")
    print(f"- RSS {rss0 / 1e6:.0f} MB before, {rss1 / 1e6:.0f} MB after\n")
    print("| socket | decoded | dropped by reason | refused | events | errors |\n|---|---|---|---|---|---|")
    print(row("server window SUB", windows.server))
    print(row("server work PULL", work.server))
    return 0 if not decode_crashes and all(alive) else 1


if __name__ == "__main__":
    sys.exit(main())
