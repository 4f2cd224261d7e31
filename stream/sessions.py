"""``bodytalk sessions``: inspect recorded session files.

``sessions info FILE`` reads the whole file once (recovering a truncated one) and reports its time
span, messages per topic, the sensors, bodies and skeleton layouts seen (bodies from window topics
``skeleton.window.<sensor>.<body>`` and from the body ids inside frame messages), its size and
whether it was finished. Only skeleton messages are decoded; undecodable ones are counted. Damaged
chunks (a flipped byte fails their CRC) are skipped and reported with the messages they held.
Names from the file reach the terminal with control characters escaped.

``sessions export IN OUT --to foxglove[,ros2]`` writes a copy of the session with Foxglove-schema
and/or ROS 2 (ros2msg/CDR) channels beside the bus messages, so the Foxglove app and ``ros2 bag``
open it and ``bodytalk replay`` still replays it (needs the foxglove / ros2 extra).

Examples:
  bodytalk sessions info session.mcap
  bodytalk sessions info session.mcap --json | jq .topics
  bodytalk sessions export session.mcap --to foxglove session-foxglove.mcap
  bodytalk sessions export session.mcap --to foxglove,ros2 session-both.mcap
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bodytalk.stream import schema, topics
from bodytalk.stream.session_file import SessionFileError, SessionReader

log = logging.getLogger("bodytalk.sessions")


def info(path: str) -> dict[str, Any]:
    """Summary of one session file as plain JSON types."""
    reader = SessionReader(path)
    counts: Counter[str] = Counter()
    bodies: dict[str, set[str]] = {}   # sensor -> body ids
    layouts: set[str] = set()
    undecodable = 0
    first = last = None
    for rec in reader.records():
        counts[rec.topic] += 1
        first = rec.log_time if first is None else min(first, rec.log_time)
        last = rec.log_time if last is None else max(last, rec.log_time)
        if not rec.topic.startswith(topics.SKELETON):
            continue
        try:
            msg, _ = schema.decode(rec.frames)
        except schema.DecodeError:
            undecodable += 1
            continue
        seen = bodies.setdefault(msg.sensor, set())
        layouts.add(msg.layout)
        if isinstance(msg, schema.SkeletonWindow):
            seen.add(msg.body)
        elif isinstance(msg, schema.SkeletonFrame):
            seen.update(str(b) for b in msg.body_ids.tolist())
    return {
        "file": path,
        "size_bytes": reader.size,
        "truncated": reader.truncated,
        "messages": sum(counts.values()),
        "start": _iso(first),
        "end": _iso(last),
        "duration_s": 0.0 if first is None else round((last - first) / 1e9, 3),
        "topics": dict(sorted(counts.items())),
        "sensors": sorted(bodies),
        "bodies": {sensor: sorted(ids, key=_body_order) for sensor, ids in sorted(bodies.items())},
        "layouts": sorted(layouts),
        "undecodable": undecodable + reader.skipped,
        "lost_chunks": reader.lost_chunks,
        "lost_messages": reader.lost_messages,
        "metadata": reader.metadata,
    }


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.datetime.fromtimestamp(ns / 1e9).astimezone().isoformat(timespec="milliseconds")


def _body_order(body: str) -> tuple[int, Any]:
    """Numeric ids in numeric order, then names."""
    return (0, int(body)) if body.lstrip("-").isdigit() else (1, body)


def print_table(summary: dict[str, Any]) -> None:
    console = Console()
    overview = Table(show_header=False, box=None, pad_edge=False)
    overview.add_column(style="bold")
    overview.add_column()
    state = "truncated (recovered; recorder did not finish)" if summary["truncated"] else "finished"
    rows = [
        ("file", summary["file"]),
        ("size", f"{summary['size_bytes'] / 1e6:.2f} MB"),
        ("state", state),
        ("start", summary["start"] or "-"),
        ("end", summary["end"] or "-"),
        ("duration", f"{summary['duration_s']:.1f} s"),
        ("messages", str(summary["messages"])),
        ("sensors", ", ".join(summary["sensors"]) or "-"),
        ("bodies", "; ".join(f"{s}: {', '.join(ids)}" for s, ids in summary["bodies"].items()) or "-"),
        ("layouts", ", ".join(summary["layouts"]) or "-"),
    ]
    if summary["undecodable"]:
        rows.append(("undecodable", str(summary["undecodable"])))
    if summary["lost_chunks"]:
        rows.append(("damaged", f"{summary['lost_chunks']} chunks skipped, {summary['lost_messages']} messages "
                                "lost (the rest was read)"))
    for key, value in rows:
        overview.add_row(key, _safe(value))
    console.print(overview)
    by_topic = Table(title="messages by topic", title_justify="left")
    by_topic.add_column("topic")
    by_topic.add_column("messages", justify="right")
    by_topic.add_column("rate (Hz)", justify="right")
    for topic, n in summary["topics"].items():
        rate = n / summary["duration_s"] if summary["duration_s"] > 0 else 0.0
        by_topic.add_row(_safe(topic), str(n), f"{rate:.1f}")
    console.print(by_topic)


def _safe(text: str) -> str:
    """Recorded strings reach the terminal escaped: no control sequences, no rich markup."""
    return escape(topics.printable(text))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodytalk sessions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="{info,export}")
    info_p = verbs.add_parser("info", help="time span, topics, bodies and state of a session file")
    info_p.add_argument("file", help="session file written by `bodytalk record`")
    info_p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    exp = verbs.add_parser("export", help="copy a session with Foxglove and/or ROS 2 channels")
    exp.add_argument("file", help="session file written by `bodytalk record`")
    exp.add_argument("out", help="MCAP file to write (overwritten)")
    exp.add_argument("--to", required=True, metavar="foxglove,ros2",
                     help="channels to add: foxglove (extra foxglove), ros2 (extra ros2), or both")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb == "export":
        return _export(args)
    try:
        summary = info(args.file)
    except SessionFileError as err:
        log.error("%s", err)
        return 2
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(summary)
    return 0


def _export(args: argparse.Namespace) -> int:
    # The converters are bus clients in bodytalk.bridges, imported only for this verb.
    from bodytalk.bridges.extras import ExtraMissing
    from bodytalk.bridges.foxglove import export

    try:
        done = export.export(args.file, args.out, export.parse_kinds(args.to))
    except (SessionFileError, ExtraMissing, ValueError) as err:
        log.error("%s", err)
        return 2
    print(f"{done['bus_messages']} bus messages and {done['derived_messages']} {args.to} messages "
          f"-> {done['out']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
