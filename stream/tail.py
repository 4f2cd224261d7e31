"""``bodytalk tail``: print the messages on the bus, decoded, one line each.

Subscribes (SUB, connects ``--sub``) to topics starting with ``--topic``; publishes nothing.
Malformed messages are dropped and counted by the transport; the count goes to stderr at exit.
Human lines show the topic, the sender time and the fields (arrays as their shape, text with
spaces quoted, so an explanation piece's leading space shows); ``--json``
prints one JSON object per line: ``topic``, ``ts`` and the message fields, arrays as
``{"shape": [...], "dtype": "..."}``. Every line is flushed, so a pipe sees it at once.

Examples:
  bodytalk tail
  bodytalk tail --topic skeleton.window. --count 5
  bodytalk tail --sub tcp://127.0.0.1:5556 --topic emotion. --json | jq .label
  bodytalk tail --sub tcp://127.0.0.1:5556 --topic emotion.text.     # explanations as they are generated
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from typing import TextIO

from bodytalk.stream import schema, security, topics
from bodytalk.stream.transport import Subscriber

log = logging.getLogger("bodytalk.tail")

LINE_WIDTH = 200  # characters of a human line before it is cut with "..."


def json_line(topic: str, msg: schema.Message, ts: float) -> str:
    return json.dumps({"topic": topic, "ts": ts, **schema.to_jsonable(msg)}, default=str)


def human_line(topic: str, msg: schema.Message, ts: float) -> str:
    clock = datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]
    parts, omitted = [], msg.fields_table().omitted
    for name, value in schema.to_jsonable(msg).items():
        if name == "type" or value is None or value == {} or value == [] or omitted.get(name, ...) == value:
            continue  # empty, or a later field at its default (``padded=False``)
        if isinstance(value, dict) and set(value) == {"shape", "dtype"}:
            value = "x".join(map(str, value["shape"])) or "scalar"  # an array: its shape
        elif isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, str) and (not value or any(c.isspace() for c in value)):
            value = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, default=str, separators=(",", ":"))
        parts.append(f"{name}={value}")
    line = topics.printable(f"{clock} {topic} " + " ".join(parts))
    return line if len(line) <= LINE_WIDTH else line[:LINE_WIDTH - 3] + "..."


def run(sub: Subscriber, count: int | None, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Print until ``count`` messages (or forever); returns the number printed."""
    fmt = json_line if as_json else human_line
    printed = 0
    while count is None or printed < count:
        got = sub.recv(timeout=0.5)
        if got is None:
            continue
        msg, ts = got
        out.write(fmt(msg.topic, msg, ts) + "\n")
        out.flush()
        printed += 1
    return printed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk tail", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    topics.add_subscription_arguments(p, "print")
    p.add_argument("--count", type=int, default=None, help="exit after this many messages")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    security.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = security.parse_args(build_parser(), argv)
    if args.count is not None and args.count < 1:
        log.error("--count must be >= 1")
        return 2
    with Subscriber(args.sub, prefixes=[args.topic]) as sub:
        try:
            run(sub, args.count, args.json)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how an open-ended tail ends
        except BrokenPipeError:
            # `bodytalk tail | head` closed the pipe; point stdout at devnull so the interpreter's
            # final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        finally:
            _report_drops(sub)
    return 0


def _report_drops(sub: Subscriber) -> None:
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sub.drops.most_common())
    sys.stderr.write(f"tail: {sub.received} messages, {sub.dropped} dropped as malformed"
                     + (f" ({reasons})" if reasons else "") + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
