"""``bodytalk record``: store the exact bus messages with their receive times in an MCAP session.

Subscribes (SUB, connects ``--sub``) to every topic starting with ``--topic`` (default: all) and
publishes nothing. Messages are stored byte for byte, never decoded, so a session replays into
the bus unchanged (see ``session_file`` for the file layout). The open chunk is flushed every
0.25 s: a ``kill -9`` leaves a readable file missing at most the last fraction of a second.
Ctrl-C, SIGTERM or ``--duration`` end the recording with a complete index and summary. A full
disk ends it with one error line (exit 1); the file keeps every chunk flushed before. Topics
beyond MCAP's 65,535 channels share family channels (``session_file`` says how).

Examples:
  bodytalk record --out session.mcap
  bodytalk record --sub tcp://10.0.0.5:5555 --topic skeleton.window. --out windows.mcap --duration 60
  bodytalk record --sub tcp://127.0.0.1:5556 --topic emotion. --out emotions.mcap
  bodytalk record --sub tcp://127.0.0.1:5555,tcp://127.0.0.1:5556 --foxglove --out session.mcap

``--foxglove`` / ``--ros2`` also write Foxglove-schema / ROS 2 channels derived from the messages
(as ``bodytalk sessions export`` does), beside the exact payloads; they need those extras.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from bodytalk.stream import security, topics
from bodytalk.stream.session_file import SessionFileError, SessionWriter
from bodytalk.stream.transport import Subscriber

log = logging.getLogger("bodytalk.record")

RECORDER_HWM = 10_000  # messages queued while the writer compresses a chunk; ~5 min of windows
PROGRESS_EVERY = 10.0  # seconds between progress log lines


@dataclass(frozen=True)
class RecordConfig:
    out: str
    sub: str = topics.DEFAULT_CAPTURE_ADDR
    topic: str = ""
    duration: float | None = None
    flush_every: float = 0.25  # seconds: the most a crash can lose
    derive: tuple[str, ...] = ()  # "foxglove", "ros2": derived channels (bodytalk.bridges)

    def __post_init__(self) -> None:
        security.check_addresses(self.sub)
        if self.duration is not None and self.duration <= 0:
            raise ValueError("--duration must be > 0 seconds")
        if self.flush_every <= 0:
            raise ValueError("flush_every must be > 0 seconds")
        folder = os.path.dirname(os.path.abspath(self.out))
        if not os.path.isdir(folder):
            raise ValueError(f"--out folder {folder} does not exist; create it first")


@dataclass(frozen=True)
class RecordSummary:
    messages: int
    topics: int
    seconds: float
    path: str
    error: str | None = None   # why the recording stopped early (a full disk)

    def line(self) -> str:
        size = os.path.getsize(self.path) / 1e6 if os.path.exists(self.path) else 0.0
        return (f"recorded {self.messages} messages on {self.topics} topics in "
                f"{self.seconds:.1f} s -> {self.path} ({size:.2f} MB)")


def run(cfg: RecordConfig, stop: threading.Event | None = None) -> RecordSummary:
    """Record until ``duration``, ``stop`` is set, or Ctrl-C; the file is always finished."""
    stop = stop or threading.Event()
    metadata = {"sub": cfg.sub, "topic_prefix": cfg.topic,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    start = time.monotonic()
    with Subscriber(cfg.sub, prefixes=[cfg.topic], hwm=RECORDER_HWM) as sub, \
            SessionWriter(cfg.out, metadata=metadata, flush_every=cfg.flush_every) as writer:
        tap = _tap(writer, cfg.derive)
        log.info("recording %s (topics %r) -> %s", cfg.sub, cfg.topic or "*", cfg.out)
        next_progress = start + PROGRESS_EVERY
        try:
            while not stop.is_set():
                now = time.monotonic()
                if cfg.duration is not None and now - start >= cfg.duration:
                    break
                if now >= next_progress:
                    log.info("%d messages on %d topics so far", writer.count, len(writer.counts))
                    next_progress = now + PROGRESS_EVERY
                # Short poll: the flush timer and the stop checks run even when the bus is quiet.
                frames = sub.recv_frames(timeout=min(0.1, cfg.flush_every))
                if frames is None:
                    writer.tick()
                else:
                    log_time = time.time_ns()
                    writer.write(frames, log_time)
                    if tap is not None:
                        tap.write(frames, log_time)
        except KeyboardInterrupt:
            pass  # Ctrl-C is the normal way to end a recording; the with-block finishes the file
        except SessionFileError as err:  # a full disk: the file keeps what was flushed
            return RecordSummary(writer.count, len(writer.counts), time.monotonic() - start, cfg.out, str(err))
        return RecordSummary(writer.count, len(writer.counts), time.monotonic() - start, cfg.out)


def _tap(writer: SessionWriter, derive: tuple[str, ...]):
    """The converter of derived channels, imported only when asked for (optional extras)."""
    if not derive:
        return None
    from bodytalk.bridges.foxglove.export import Tap
    return Tap(writer, derive)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk record", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    topics.add_subscription_arguments(p, "record")
    p.add_argument("--out", required=True, help="MCAP file to write (overwritten)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--foxglove", action="store_true",
                   help="also write Foxglove channels (3D skeletons, explanations, probabilities)")
    p.add_argument("--ros2", action="store_true", help="also write ROS 2 (hri_msgs, tf2) channels")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = security.parse_args(build_parser(), argv)
    stop = threading.Event()
    # SIGTERM (docker stop, a supervisor) ends the recording as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        derive = tuple(k for k in ("foxglove", "ros2") if getattr(args, k))
        cfg = RecordConfig(out=args.out, sub=args.sub, topic=args.topic, duration=args.duration, derive=derive)
        summary = run(cfg, stop)
    except (ValueError, SessionFileError, RuntimeError) as err:  # RuntimeError: a missing extra
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:  # before recording started: no file to finish
        return 130
    if summary.error:
        log.error("%s", summary.error)
        return 1
    print(summary.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
