"""The tokenizer worker (``bodytalk worker``): windows in, prompt work for the LLM server out.

Subscribes (SUB, connects ``--sub``):   skeleton.window.*      (its shard of the bodies, --shard I/N)
Pushes     (PUSH, connects ``--work``): work.<sensor>.<body>   PromptWork: skeleton tokens [S, H]
                                        (encoder + projector), descriptors and their prompt line,
                                        the encoder head's logits, worker latency stamps
                                        status.worker_<name>   heartbeat (windows, sent, drops), which
                                        the server forwards onto the event bus
The worker loads its checkpoint without the LLM. Its push never blocks and queues only to a live
server: while none is up, work is dropped and counted, so capture never waits on the model and a
restarted server gets fresh windows rather than a backlog. Several workers run side by side, each
taking a shard of the bodies by a stable hash of ``sensor.body``: one body's windows always pass
through one worker and reach the server in order (the stable label's hysteresis depends on it).

The tokenizing step itself is ``tokenize.Tokenizer``, which the server also runs in-process (``bodytalk serve``
without --work).

Examples:
  bodytalk serve --work tcp://127.0.0.1:5557 &      # the LLM server that collects the work
  bodytalk worker                                   # demo model, windows from :5555, work to :5557
  bodytalk worker --shard 0/2 & bodytalk worker --shard 1/2 &
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass


from bodytalk.model.serving.tokenize import Tokenizer, count_error
from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Heartbeat, Pusher, Subscriber

log = logging.getLogger("bodytalk.worker")


@dataclass(frozen=True)
class WorkerConfig:
    sub: str = topics.DEFAULT_CAPTURE_ADDR
    work: str = topics.DEFAULT_WORK_ADDR
    model: str | None = None
    shard: tuple[int, int] = (0, 1)  # (index, count): this worker takes the bodies hashing to index
    name: str = ""                   # status component worker_<name>; default: the shard or the pid
    max_batch: int = 16
    hwm: int = 16                    # work items queued to the server before drops (bounded)
    threads: int = 1                 # torch threads: scale out with workers, not threads per worker

    def __post_init__(self) -> None:
        security.check_addresses(self.sub, self.work)   # before the model loads
        index, count = self.shard
        if not (count >= 1 and 0 <= index < count):
            raise ValueError(f"--shard must be I/N with 0 <= I < N, got {index}/{count}")
        if self.max_batch < 1 or self.hwm < 1 or self.threads < 1:
            raise ValueError("max_batch, hwm and threads must be >= 1")
        if not self.name:
            object.__setattr__(self, "name", f"{index}of{count}" if count > 1 else str(os.getpid()))
        topics.part(self.name)


def shard_of(sensor: str, body: str, count: int) -> int:
    """Stable across processes and runs (Python's hash() is salted per process). A cryptographic
    digest, because CRC32 is linear: ids 1, 2, 3 of one sensor all land on shard 0 of 2."""
    digest = hashlib.blake2b(f"{sensor}.{body}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % count


class Worker:
    def __init__(self, cfg: WorkerConfig, tokenizer: Tokenizer, sub: Subscriber, push: Pusher) -> None:
        self.cfg, self.tokenizer, self.sub, self.push = cfg, tokenizer, sub, push
        self.heartbeat = Heartbeat(push, f"worker_{cfg.name}")
        self.counts: Counter[str] = Counter()  # windows, sent, push_drops, other_shard

    def step(self, timeout: float = 0.5) -> int:
        """Tokenize what is waiting (up to max_batch windows of this shard); returns items sent."""
        batch: list[tuple[schema.SkeletonWindow, float]] = []
        got = self.sub.recv(timeout)
        while got is not None:
            msg = got[0]
            if isinstance(msg, schema.SkeletonWindow):
                if shard_of(msg.sensor, msg.body, self.cfg.shard[1]) == self.cfg.shard[0]:
                    batch.append((msg, time.time()))
                else:
                    self.counts["other_shard"] += 1
            if len(batch) >= self.cfg.max_batch:
                break
            got = self.sub.recv(0)
        if not batch:
            return 0
        self.counts["windows"] += len(batch)
        try:
            work = self.tokenizer.tokenize(batch)
        except Exception as err:  # noqa: BLE001 -- one bad batch must not end the worker
            count_error(self.counts, err, "worker")
            return 0
        sent = sum(self.push.send(w) for w in work)
        self.counts["sent"] += sent
        self.counts["push_drops"] += len(batch) - sent
        return sent

    def beat(self, rate_hz: float = 0.0) -> None:
        """Send the heartbeat (``rate_hz``: windows tokenized per second)."""
        self.heartbeat.tick(rate_hz=rate_hz, drops=self.counts["push_drops"] + self.sub.dropped,
                            counters={**self.counts, **{f"decode_{k}": n for k, n in self.sub.drops.items()}})

    def run(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        start = t_rate = time.monotonic()
        n_rate = self.counts["windows"]
        while not (stop and stop.is_set()) and (duration is None or time.monotonic() - start < duration):
            self.step()
            now = time.monotonic()
            if now - t_rate >= 1.0:
                try:
                    self.beat((self.counts["windows"] - n_rate) / (now - t_rate))
                except ValueError as err:   # a counter a status message cannot carry: counted, not fatal
                    count_error(self.counts, err, "worker (heartbeat)")
                t_rate, n_rate = now, self.counts["windows"]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like 0/2, not {text!r}") from None
    return index, count


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sub", default=topics.DEFAULT_CAPTURE_ADDR, help="capture address (default %(default)s)")
    p.add_argument("--work", default=topics.DEFAULT_WORK_ADDR, help="server work address (default %(default)s)")
    p.add_argument("--model", default=None, help="checkpoint folder, the server's (default: the demo model)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), help="I/N: this worker's share of the bodies")
    p.add_argument("--name", default="", help="status name (status.worker_NAME; default: shard or pid)")
    p.add_argument("--max-batch", type=int, default=16, help="windows per batch")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    import torch

    from bodytalk.model.registry import load_model

    args = security.parse_args(build_parser(), argv)
    try:
        cfg = WorkerConfig(sub=args.sub, work=args.work, model=args.model, shard=args.shard, name=args.name,
                           max_batch=args.max_batch, threads=args.threads)
        model = load_model(cfg.model, with_llm=False)
    except (ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2
    torch.set_num_threads(cfg.threads)
    sub = Subscriber(cfg.sub, prefixes=[topics.WINDOW])
    push = Pusher(cfg.work, hwm=cfg.hwm, block=False, immediate=True)
    worker = Worker(cfg, Tokenizer(model), sub, push)
    log.info("worker %s: windows from %s, work to %s (model %s)", cfg.name, cfg.sub, cfg.work,
             worker.tokenizer.model_id)
    try:
        worker.run(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
        push.close()
    return 0
