"""The emotion server (``bodytalk serve``): windows in, emotion events out, continuously.

Two ways in:
  one process (default)  SUB, connects --sub:  skeleton.window.*; the server runs the tokenizer
                         step (descriptors, encoder, projector) itself
  split (--work ADDR)    PULL, binds ADDR:     work.<sensor>.<body> from `bodytalk worker`s, which
                         ran the tokenizer step; their heartbeats are forwarded onto --pub.
                         Work items carry prompt embeddings: whoever reaches ADDR steers the LLM,
                         so it is loopback by default; another interface needs --keys (CURVE:
                         only workers with an authorised key get in) or --insecure.
Publishes (PUB, binds ``--pub``):     emotion.<sensor>.<body>  label, probabilities, stable label,
                                       evidence, explanation when produced, latency per stage;
                                       status "insufficient_data" with the reason
                                       emotion.text.<sensor>.<body>  explanation pieces as they are
                                       generated (raw; --no-stream-text turns them off)
                                       status.server            heartbeat: rate, drops, queue depth
Answers (ROUTER, binds ``--snapshot``):  the latest event of every body, for late joiners
                                       (ZeroMQ's clone pattern; events carry a per-body ``seq``)
Windows are batched across bodies and sensors (everything waiting, up to --max-batch). Recognition
runs for every window; an explanation is generated when a body's stable label changes or every
--explain-every seconds, one step at a time between label batches (explainer.py says why), so a
window waits for at most one decoding step. Its pieces stream on emotion.text; the checked
explanation follows on an emotion event of the window. A window that fails
validation yields an event with status "insufficient_data" and its ``reason``, not silence.
``latency_ms`` stages: features, encoder (tokenizer step), queue (split only: worker sent ->
server took it), label, explain (explained events), total (the window's arrival, at the server or
at the worker in the split, -> the event's publication).
Drops on status.server: malformed messages, refused work (another checkpoint, wrong shapes) and,
in ``counters.lost_windows``, windows that never arrived (gaps in a body's window seq).

Examples:
  bodytalk serve                                   # demo model, capture on :5555, events on :5556
  bodytalk serve --model runs/bandai/checkpoint --explain-every 5
  bodytalk serve --work tcp://127.0.0.1:5557       # fed by `bodytalk worker`s
  bodytalk serve --threads 1                       # on a machine other busy processes share
"""
from __future__ import annotations

import argparse
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from bodytalk.model.constants import LABEL_PATH_HELP
from bodytalk.model.serving.explainer import Explainer
from bodytalk.model.serving.hysteresis import StableLabel
from bodytalk.model.registry import BACKENDS
from bodytalk.model.serving.tokenize import Tokenizer, count_error, descriptors_of
from bodytalk.model.skeleton.microgestures import MGResult
from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Heartbeat, Publisher, Puller, SnapshotServer, Subscriber, TransportError

log = logging.getLogger("bodytalk.serve")

MAX_BODIES = 4096   # bodies whose stable label and window seq the server remembers (README "Limits")
MAX_SEQ_GAP = 1_000_000   # a larger jump in a body's window seq is counted as a jump, not as lost windows


@dataclass(frozen=True)
class ServeConfig:
    sub: str = topics.DEFAULT_CAPTURE_ADDR
    pub: str = topics.DEFAULT_SERVER_ADDR
    model: str | None = None
    work: str | None = None       # split mode: PULL work items from workers here instead of --sub
    path: str = "auto"            # label path: llm | head | auto
    explain: bool = True
    explain_every: float = 10.0   # seconds between explanations of one body (and on label change)
    max_batch: int = 16
    max_new_tokens: int = 40
    stream_text: bool = True      # publish explanation pieces on emotion.text.<sensor>.<body>
    int8: bool = True             # the LLM computes with int8 copies of its weights (int8_copies)
    threads: int = 0              # torch threads; 0 = torch's default (every core). On a machine shared
                                  # with other busy processes, 1 avoids oversubscription (measured 6x faster)
    snapshot: str | None = None   # ROUTER: the latest event per body for late joiners

    def __post_init__(self) -> None:
        security.check_addresses(self.sub, self.pub, self.work, self.snapshot)   # before the model loads
        if self.path not in ("auto", "llm", "head"):
            raise ValueError(f"path must be auto, llm or head, not {self.path!r}")
        if self.max_batch < 1 or self.explain_every <= 0 or self.max_new_tokens < 1 or self.threads < 0:
            raise ValueError("max_batch, explain_every and max_new_tokens must be positive, threads >= 0")


class Server:
    def __init__(self, cfg: ServeConfig, model, pub: Publisher, intake: Subscriber | Puller,
                 snapshot: SnapshotServer | None = None) -> None:
        """``intake``: a Subscriber of windows (tokenized here) or a Puller of workers' PromptWork;
        ``snapshot``: where late joiners ask for the latest event per body (answered in ``run``)."""
        self.cfg, self.model, self.pub, self.intake, self.snapshot = cfg, model, pub, intake, snapshot
        self.tokenizer = Tokenizer(model)
        self.path = model.label_path(cfg.path)
        self.token_shape = (model.cfg.prompt_tokens, model.cfg.projector.out_dim)  # [S, H]
        self.stable: dict[tuple[str, str], StableLabel] = {}
        self.last_explained: dict[tuple[str, str], float] = {}
        self.last_seq: dict[tuple[str, str], int] = {}
        self.latest: dict[tuple[str, str], schema.EmotionEvent] = {}   # what a late joiner gets first
        self.heartbeat = Heartbeat(pub, "server")
        self.counts: Counter[str] = Counter()  # events (labels), explanations, explain_busy, lost_windows
        self.refused: Counter[str] = Counter()  # work items refused, by reason
        self.can_explain = cfg.explain and model.llm is not None
        self.explainer = Explainer(model, self._send, self._send_event, cfg.max_new_tokens, cfg.stream_text)

    @property
    def events(self) -> int:
        return self.counts["events"]

    def step(self, timeout: float = 0.5) -> int:
        """Receive what is waiting (up to max_batch windows or work items), publish one event each."""
        got = self.intake.recv(timeout)
        if got is None:
            return 0
        batch = [(*got, time.time())]
        while len(batch) < self.cfg.max_batch and (nxt := self.intake.recv(0)) is not None:
            batch.append((*nxt, time.time()))
        windows, work = [], []  # work: (item, latency stages the item does not carry yet)
        for msg, ts, t_recv in batch:
            if isinstance(msg, schema.SkeletonWindow):
                windows.append((msg, t_recv))
            elif isinstance(msg, schema.PromptWork) and self._accept(msg):
                # "queue": worker sent -> server took it (transfer + waiting for the server). Wall
                # clocks of two hosts may disagree by more than that takes: never < 0.
                work.append((msg, {"queue": max(0.0, t_recv - ts) * 1e3}))
            elif isinstance(msg, schema.Status) and msg.component.startswith("worker_"):
                self._send(msg)  # a worker's heartbeat, onto the event bus
        try:
            if windows:
                work.extend((w, {}) for w in self.tokenizer.tokenize(windows))
            self._read(work)
        except Exception as err:  # noqa: BLE001 -- past every check: count it, keep serving
            count_error(self.counts, err, "server")
        return len(work)

    def _accept(self, work: schema.PromptWork) -> bool:
        """Refuse (and count) work this server's LLM cannot read."""
        reason = None
        if work.model != self.tokenizer.model_id:
            reason = "model"
        elif work.status == "ok" and (work.tokens.shape != self.token_shape
                                      or work.head_logits.shape != (len(self.model.labels),)):
            reason = "shape"
        elif not _readable(work):
            reason = "content"
        if reason is None:
            return True
        self.refused[reason] += 1
        if self.refused[reason] == 1:
            log.warning("refusing work from a worker (%s): checkpoint %s, tokens %s; this server has %s, "
                        "tokens %s -- start workers and server with the same --model", reason, work.model,
                        work.tokens.shape, self.tokenizer.model_id, self.token_shape)
        return False

    def _read(self, work: list[tuple[schema.PromptWork, dict]]) -> None:
        """Label every readable item in one batch, then publish in arrival order."""
        ok = [w for w, _ in work if w.status == "ok"]
        t0 = time.perf_counter()
        rows: list[list[float]] = []
        if ok:
            tokens = torch.from_numpy(np.stack([w.tokens for w in ok]))        # [B, S, H]
            logits = torch.from_numpy(np.stack([w.head_logits for w in ok]))   # [B, L]
            rows = self.model.label_probs(tokens, [w.evidence_text for w in ok], logits, self.path).tolist()
        label_ms = (time.perf_counter() - t0) * 1e3
        rows_iter = iter(rows)
        for w, stages in work:
            probs = dict(zip(self.model.labels, next(rows_iter))) if w.status == "ok" else {}
            self._publish(w, probs, dict(w.latency_ms, **stages, label=label_ms) if probs else
                          dict(w.latency_ms, **stages))

    def _publish(self, w: schema.PromptWork, probs: dict[str, float], latency: dict[str, float]) -> None:
        key = (w.sensor, w.body)
        self._count_lost(key, w.window_seq)
        tracker = self._track(key)
        changed = tracker.update(probs) if probs else False
        event = dict(sensor=w.sensor, body=w.body, window_seq=w.window_seq, t_start=w.t_start, t_end=w.t_end,
                     status=w.status, reason=w.reason, label=max(probs, key=probs.get) if probs else None,
                     stable_label=tracker.label, probs=probs, evidence=_evidence(w), mgs=_mgs(w),
                     latency_ms=latency, padded=w.padded, real_frames=w.real_frames)
        self._send_event(event, w.t_received)
        now = time.monotonic()
        due = changed or now - self.last_explained.get(key, -1e9) >= self.cfg.explain_every
        if self.can_explain and probs and due and tracker.label:
            if self.explainer.submit(event, w, tracker.label):
                self.last_explained[key] = now
            else:
                self.counts["explain_busy"] += 1  # this body is explained at its next due window

    def _track(self, key: tuple[str, str]) -> StableLabel:
        """The body's stable-label tracker, most recently seen last. Body ids are never reused (a
        Kinect that runs for days, a flood of made-up ids), so past MAX_BODIES the body seen
        longest ago is forgotten: per-body state stays bounded."""
        tracker = self.stable.pop(key, None) or StableLabel(self.model.labels)
        self.stable[key] = tracker
        if len(self.stable) > MAX_BODIES:
            old = next(iter(self.stable))
            for state in (self.stable, self.last_explained, self.last_seq, self.latest):
                state.pop(old, None)
            self.counts["forgotten_bodies"] += 1
        return tracker

    def _count_lost(self, key: tuple[str, str], seq: int) -> None:
        """Windows that never arrived: gaps in a body's window seq (a restarted capture starts over)."""
        last = self.last_seq.get(key)
        if last is not None and last + 1 < seq <= last + 1 + MAX_SEQ_GAP:
            self.counts["lost_windows"] += seq - last - 1
        elif last is not None and seq > last + 1:
            self.counts["seq_jumps"] += 1   # no capture loses that many: a forged or corrupt seq
        self.last_seq[key] = seq

    def _send_event(self, event: dict, t_received: float) -> None:
        event["latency_ms"]["total"] = max(0.0, time.time() - t_received) * 1e3
        key = (event["sensor"], event["body"])
        last = self.latest.get(key)
        msg = schema.EmotionEvent(**event, seq=0 if last is None else last.seq + 1)
        self.latest[key] = msg
        self._send(msg, "explanations" if event.get("explanation") is not None else "events")

    def latest_events(self, prefix: str = "") -> list[schema.EmotionEvent]:
        """The last event of every body the server remembers, on topics starting with ``prefix``."""
        return [m for m in self.latest.values() if m.topic.startswith(prefix)]

    def _send(self, msg: schema.Message, count: str | None = None) -> None:
        # One thread publishes (labels, explanation pieces and heartbeats): zmq sockets are not thread-safe.
        self.pub.send(msg)
        if count:
            self.counts[count] += 1

    def beat(self, rate_hz: float) -> None:
        drops = self.intake.dropped + sum(self.refused.values())
        counters = {**self.counts, **{f"refused_{k}": n for k, n in self.refused.items()},
                    **{f"decode_{k}": n for k, n in self.intake.drops.items()},
                    **{f"snapshot_{k}": n for k, n in (self.snapshot.drops.items() if self.snapshot else ())}}
        self.heartbeat.tick(rate_hz=rate_hz, drops=drops, queue_depth=self.explainer.queued, counters=counters)

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        start, n, t_rate = time.monotonic(), 0, time.monotonic()
        while not (stop and stop.is_set()) and (duration is None or time.monotonic() - start < duration):
            # Windows first; while an explanation is in progress only those already waiting, then
            # one step of it.
            n += self.step(0.0 if self.explainer.busy else 0.1 if self.snapshot else 0.5)
            if self.snapshot is not None:
                self.snapshot.serve(self.latest_events)
            try:
                self.explainer.step()
            except Exception as err:  # noqa: BLE001 -- an explanation that fails is counted, not fatal
                count_error(self.counts, err, "server (explanation)")
            now = time.monotonic()
            if now - t_rate >= 1.0:
                try:
                    self.beat(n / (now - t_rate))
                except ValueError as err:   # a counter a status message cannot carry: counted, not fatal
                    count_error(self.counts, err, "server (heartbeat)")
                n, t_rate = 0, now
        self.explainer.drain()   # the explanations already queued (a stop, not a crash)


def _readable(w: schema.PromptWork) -> bool:
    """The work item's evidence and micro-gestures are what a worker makes (known names, numbers)."""
    try:
        descriptors_of(w)
        mgs = MGResult.from_jsonable(w.mgs).present if w.mgs else ()
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for m in mgs for v in (m.t_start, m.t_end, m.confidence, m.count))


def _mgs(w: schema.PromptWork) -> list[dict]:
    """Detected micro-gestures with times on the capture clock."""
    return [dict(m, t_start=round(m["t_start"] + w.t_start, 3), t_end=round(m["t_end"] + w.t_start, 3))
            for m in w.mgs.get("present", [])]


def _evidence(w: schema.PromptWork) -> dict:
    """Descriptor values for the event (None where the window lacked the data)."""
    return {k: (None if v is None else round(v, 4)) for k, v in w.evidence.items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sub", default=topics.DEFAULT_CAPTURE_ADDR, help="capture address (default %(default)s)")
    p.add_argument("--pub", default=topics.DEFAULT_SERVER_ADDR, help="event address (default %(default)s)")
    p.add_argument("--work", nargs="?", const=topics.DEFAULT_WORK_ADDR, default=None, metavar="ADDR",
                   help=f"split mode: take work from `bodytalk worker`s on ADDR (default {topics.DEFAULT_WORK_ADDR}"
                        f"; loopback unless you trust the network) instead of windows from --sub")
    p.add_argument("--snapshot", nargs="?", const=topics.DEFAULT_SNAPSHOT_ADDR, default=None, metavar="ADDR",
                   help="answer late joiners with the latest event per body on ADDR (default "
                        f"{topics.DEFAULT_SNAPSHOT_ADDR}; bodytalk.subscribe(..., snapshot=ADDR))")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the demo model)")
    p.add_argument("--path", default="auto", choices=("auto", "llm", "head"), help=LABEL_PATH_HELP)
    p.add_argument("--no-explain", action="store_true", help="labels only")
    p.add_argument("--explain-every", type=float, default=10.0, help="seconds between explanations per body")
    p.add_argument("--stream-text", action=argparse.BooleanOptionalAction, default=True,
                   help="publish explanation pieces on emotion.text.<sensor>.<body> as they are generated")
    p.add_argument("--max-batch", type=int, default=16, help="windows per batch")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: every core)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                   help="transformers backend: compute with int8 copies of the LLM's weights (about 1.8x "
                        "faster label scoring on CPU; --no-int8: the exact weights)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--backend", default="transformers", choices=BACKENDS,
                   help="LLM backend (vllm: the extra bodytalk[vllm], in-process unless --vllm-url)")
    p.add_argument("--vllm-url", default=None, metavar="URL",
                   help="a vLLM OpenAI server (python -m bodytalk.model.llm.vllm CKPT prints its command); loopback only")
    p.add_argument("--vllm-allow-remote", action="store_true",
                   help="accept a non-loopback --vllm-url (use https and $VLLM_API_KEY)")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from bodytalk.model.registry import load_model

    args = security.parse_args(build_parser(), argv)
    try:
        cfg = ServeConfig(sub=args.sub, pub=args.pub, model=args.model, work=args.work, path=args.path,
                          explain=not args.no_explain, explain_every=args.explain_every, max_batch=args.max_batch,
                          stream_text=args.stream_text, threads=args.threads, int8=args.int8,
                          snapshot=args.snapshot)
        vllm = None
        if args.backend == "vllm":
            from bodytalk.model.llm.vllm import VLLMConfig
            vllm = VLLMConfig(url=args.vllm_url, allow_remote=args.vllm_allow_remote)
        model = load_model(cfg.model, with_llm=cfg.path != "head" or cfg.explain, backend=args.backend, vllm=vllm, int8=cfg.int8)
        pub = Publisher(cfg.pub)
    except (ValueError, FileNotFoundError, TransportError, ImportError, ConnectionError) as err:
        log.error("%s", err)
        return 2
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    intake = snapshot = None
    try:
        intake = Subscriber(cfg.sub, prefixes=[topics.WINDOW]) if cfg.work is None else Puller(cfg.work)
        snapshot = SnapshotServer(cfg.snapshot) if cfg.snapshot else None
        Server(cfg, model, pub, intake, snapshot).run(args.duration)
    except TransportError as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        for sock in (pub, intake, snapshot):
            if sock is not None:
                sock.close()
    return 0
