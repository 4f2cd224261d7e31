"""The emotion server (``bodytalk serve``): windows in, emotion events out, continuously.

Subscribes (SUB, connects ``--sub``):  skeleton.window.*
Publishes  (PUB, binds ``--pub``):     emotion.<sensor>.<body>  label, probabilities, stable label,
                                       evidence, explanation when produced, latency per stage
                                       status.server            heartbeat: rate, drops, queue depth
Windows are batched across bodies and sensors (everything waiting, up to --max-batch). Recognition
runs for every window; an explanation is generated on a background thread when a body's stable
label changes or every --explain-every seconds, so labels never wait for text. A window that fails
validation yields an event with status "insufficient_data", not silence.

Examples:
  bodytalk serve                                   # demo model, capture on :5555, events on :5556
  bodytalk serve --model runs/bandai/checkpoint --explain-every 5
"""
from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from bodytalk.model.features import WindowInput
from bodytalk.model.hysteresis import StableLabel
from bodytalk.stream import schema, topics
from bodytalk.stream.transport import AddressInUse, Heartbeat, Publisher, Subscriber

log = logging.getLogger("bodytalk.serve")


@dataclass(frozen=True)
class ServeConfig:
    sub: str = topics.DEFAULT_CAPTURE_ADDR
    pub: str = topics.DEFAULT_SERVER_ADDR
    model: str | None = None
    path: str = "auto"            # label path: llm | head | auto
    explain: bool = True
    explain_every: float = 10.0   # seconds between explanations of one body (and on label change)
    max_batch: int = 16
    max_new_tokens: int = 40

    def __post_init__(self) -> None:
        if self.path not in ("auto", "llm", "head"):
            raise ValueError(f"path must be auto, llm or head, not {self.path!r}")
        if self.max_batch < 1 or self.explain_every <= 0 or self.max_new_tokens < 1:
            raise ValueError("max_batch, explain_every and max_new_tokens must be positive")


class Server:
    def __init__(self, cfg: ServeConfig, model, pub: Publisher, sub: Subscriber) -> None:
        self.cfg, self.model, self.pub, self.sub = cfg, model, pub, sub
        self.stable: dict[tuple[str, str], StableLabel] = {}
        self.last_explained: dict[tuple[str, str], float] = {}
        self.heartbeat = Heartbeat(pub, "server")
        self.events = 0
        self._jobs: queue.Queue = queue.Queue(maxsize=4)  # bounded: explanations are dropped, never queued up
        self._send_lock = threading.Lock()
        self.explainer = threading.Thread(target=self._explain_loop, daemon=True)
        self.can_explain = cfg.explain and model.llm is not None

    def step(self, timeout: float = 0.5) -> int:
        """Receive what is waiting (up to max_batch windows), publish one event each."""
        first = self.sub.recv(timeout)
        if first is None:
            return 0
        batch = [(first[0], time.perf_counter())]
        while len(batch) < self.cfg.max_batch and (nxt := self.sub.recv(0)) is not None:
            batch.append((nxt[0], time.perf_counter()))
        wins = [(m, t) for m, t in batch if isinstance(m, schema.SkeletonWindow)]
        if not wins:
            return 0
        inputs = [WindowInput(m.joints, m.confidence, m.fps, m.layout) for m, _ in wins]
        readings = self.model.recognise(inputs, path=self.cfg.path)
        for (msg, t_recv), inp, r in zip(wins, inputs, readings):
            self._publish(msg, inp, r, t_recv)
        return len(wins)

    def _publish(self, msg: schema.SkeletonWindow, inp: WindowInput, r, t_recv: float) -> None:
        key = (msg.sensor, msg.body)
        tracker = self.stable.setdefault(key, StableLabel(self.model.labels))
        changed = False
        if r.status == "ok":
            changed = tracker.update(r.probs)
        event = dict(sensor=msg.sensor, body=msg.body, window_seq=msg.seq, t_start=msg.t_start, t_end=msg.t_end,
                     status=r.status, label=r.label, stable_label=tracker.label, probs=r.probs,
                     evidence=_evidence(r), latency_ms=dict(r.latency_ms))
        self._send(event, t_recv)
        now = time.monotonic()
        due = changed or now - self.last_explained.get(key, -1e9) >= self.cfg.explain_every
        if self.can_explain and r.status == "ok" and due and tracker.label:
            try:
                self._jobs.put_nowait((event, inp, tracker.label, t_recv))
                self.last_explained[key] = now
            except queue.Full:
                pass  # the explainer is busy; this body is explained at its next due window

    def _send(self, event: dict, t_recv: float) -> None:
        event["latency_ms"]["total"] = (time.perf_counter() - t_recv) * 1e3
        with self._send_lock:  # the explainer thread publishes too; zmq sockets are not thread-safe
            self.pub.send(schema.EmotionEvent(**event))
        self.events += 1

    def _explain_loop(self) -> None:
        while True:
            event, inp, label, t_recv = self._jobs.get()
            if event is None:
                return
            t0 = time.perf_counter()
            try:
                (text, bad), = self.model.explain([inp], [label], max_new_tokens=self.cfg.max_new_tokens)
            except Exception as err:  # an explanation failure must not stop labels
                log.warning("explanation failed: %s", err)
                continue
            event = dict(event, explanation=text, unsupported=[c.text for c in bad],
                         latency_ms=dict(event["latency_ms"], explain=(time.perf_counter() - t0) * 1e3))
            self._send(event, t_recv)

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        if self.can_explain:
            self.explainer.start()
        start, n, t_rate = time.monotonic(), 0, time.monotonic()
        try:
            while not (stop and stop.is_set()) and (duration is None or time.monotonic() - start < duration):
                n += self.step()
                now = time.monotonic()
                if now - t_rate >= 1.0:
                    with self._send_lock:
                        self.heartbeat.tick(rate_hz=n / (now - t_rate), drops=self.sub.dropped,
                                            queue_depth=self._jobs.qsize(), counters={"events": self.events})
                    n, t_rate = 0, now
        finally:
            if self.explainer.is_alive():
                self._jobs.put((None, None, None, None))
                self.explainer.join(timeout=30)


def _evidence(r) -> dict:
    """Descriptor values for the event (NaN -> None)."""
    if r.descriptors is None:
        return {}
    return {k: (None if not np.isfinite(d.value) else round(d.value, 4)) for k, d in r.descriptors.items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sub", default=topics.DEFAULT_CAPTURE_ADDR, help="capture address (default %(default)s)")
    p.add_argument("--pub", default=topics.DEFAULT_SERVER_ADDR, help="event address (default %(default)s)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the demo model)")
    p.add_argument("--path", default="auto", choices=("auto", "llm", "head"), help="label path")
    p.add_argument("--no-explain", action="store_true", help="labels only")
    p.add_argument("--explain-every", type=float, default=10.0, help="seconds between explanations per body")
    p.add_argument("--max-batch", type=int, default=16, help="windows per batch")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return p


def main(argv: list[str] | None = None) -> int:
    from bodytalk.model.registry import load_model

    args = build_parser().parse_args(argv)
    try:
        cfg = ServeConfig(sub=args.sub, pub=args.pub, model=args.model, path=args.path, explain=not args.no_explain,
                          explain_every=args.explain_every, max_batch=args.max_batch)
        model = load_model(cfg.model, with_llm=cfg.path != "head")
        pub = Publisher(cfg.pub)
    except (ValueError, FileNotFoundError, AddressInUse) as err:
        log.error("%s", err)
        return 2
    sub = Subscriber(cfg.sub, prefixes=[topics.WINDOW])
    try:
        Server(cfg, model, pub, sub).run(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        pub.close()
        sub.close()
    return 0
