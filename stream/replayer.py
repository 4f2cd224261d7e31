"""``bodytalk replay``: republish a recorded session, unchanged, with its original timing.

Publishes (PUB, binds ``--pub``) every recorded message whose topic starts with ``--topic``,
byte for byte as it was received, spaced by the recorded receive times divided by ``--speed``
(0 = as fast as possible; a slow subscriber then loses messages, as PUB/SUB always does).
A truncated session (crashed recorder) replays what was recovered; a damaged chunk is skipped
and reported, the rest replays.

Examples:
  bodytalk replay session.mcap
  bodytalk replay session.mcap --speed 2 --topic skeleton.window.
  bodytalk replay session.mcap --pub tcp://0.0.0.0:5555 --loop
"""
from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import dataclass

from bodytalk.stream import security, topics
from bodytalk.stream.pacing import Pacer
from bodytalk.stream.session_file import SessionFileError, SessionReader
from bodytalk.stream.transport import TransportError, Publisher

log = logging.getLogger("bodytalk.replay")


@dataclass(frozen=True)
class ReplayConfig:
    file: str
    pub: str = topics.DEFAULT_CAPTURE_ADDR
    speed: float = 1.0
    topic: str = ""
    loop: bool = False
    warmup: float = 0.3  # seconds after bind before the first message (ZeroMQ slow joiner)

    def __post_init__(self) -> None:
        security.check_addresses(self.pub)
        if self.speed < 0:
            raise ValueError("--speed must be >= 0 (0 = as fast as possible)")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0 seconds")


@dataclass(frozen=True)
class ReplaySummary:
    messages: int
    passes: int
    seconds: float
    overruns: int

    def line(self) -> str:
        return (f"replayed {self.messages} messages ({self.passes} pass"
                f"{'es' if self.passes != 1 else ''}) in {self.seconds:.1f} s, "
                f"{self.overruns} late")


def run(cfg: ReplayConfig, pub: Publisher | None = None,
        stop: threading.Event | None = None) -> ReplaySummary:
    """Replay once (or until ``stop`` with ``loop``). Raises SessionFileError for a bad file."""
    reader = SessionReader(cfg.file)
    stop = stop or threading.Event()
    own_pub = pub is None
    pub = pub or Publisher(cfg.pub)
    pacer = Pacer(cfg.speed)
    sent = passes = 0
    start = time.monotonic()
    try:
        time.sleep(cfg.warmup)
        while not stop.is_set():
            before = sent
            for rec in reader.records(cfg.topic):
                if stop.is_set():
                    break
                pacer.wait(rec.t)
                pub.send_frames(rec.frames)
                sent += 1
            if sent == before:
                raise SessionFileError(f"{cfg.file} holds no messages on topics starting with "
                                       f"{cfg.topic!r}; see `bodytalk sessions info {cfg.file}`")
            passes += 1
            if reader.truncated and passes == 1:
                log.warning("%s was not finished (recorder crashed?): replayed the %d messages "
                            "recovered", cfg.file, sent)
            if reader.lost_chunks and passes == 1:
                log.warning("%s is damaged: skipped %d chunks (%d messages), replayed the rest",
                            cfg.file, reader.lost_chunks, reader.lost_messages)
            if not cfg.loop:
                break
            pacer.reset()  # the next pass starts at once, then keeps the recorded spacing
    finally:
        if own_pub:
            time.sleep(0.1)  # let the last messages leave before the socket closes
            pub.close()
    return ReplaySummary(sent, passes, time.monotonic() - start, pacer.overruns)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="session file written by `bodytalk record`")
    p.add_argument("--pub", default=topics.DEFAULT_CAPTURE_ADDR,
                   help="address to publish on (default %(default)s)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="1 = recorded timing, 2 = twice as fast, 0 = as fast as possible")
    p.add_argument("--topic", default="", help="replay only topics starting with this prefix (default: all)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = security.parse_args(build_parser(), argv)
    try:
        cfg = ReplayConfig(file=args.file, pub=args.pub, speed=args.speed, topic=args.topic,
                           loop=args.loop)
        summary = run(cfg)
    except (ValueError, SessionFileError, TransportError) as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        return 130
    print(summary.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
