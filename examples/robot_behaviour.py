"""A robot's behaviour switch on the stable emotion label of each body it sees.

Subscribes to a running emotion server (``bodytalk demo``, or ``bodytalk serve``) and, whenever a
body's stable label changes, prints the behaviour a robot would switch to. The stable label has
hysteresis, so one noisy window never makes the robot change its mind; events below
--min-confidence are ignored. The subscription reconnects by itself if the server restarts.

Run it beside the demo:
  bodytalk demo &
  python examples/robot_behaviour.py
  python examples/robot_behaviour.py --addr tcp://127.0.0.1:5556 --bodies 1 2 --duration 30
"""
from __future__ import annotations

import argparse
import time

import bodytalk

# stable label -> what the robot does. Unknown labels (another checkpoint's label set) get DEFAULT.
BEHAVIOURS = {
    "happy": "approach and mirror the energy: wave, upbeat voice",
    "sad": "approach slowly, lower the voice, offer help",
    "angry": "keep a respectful distance, calm voice, no sudden moves",
    "fearful": "stop moving, back off a step, reassure",
    "surprised": "pause and explain what the robot is doing",
    "disgusted": "stop the current action, ask what is wrong",
    "neutral": "carry on with the task",
}
DEFAULT = "observe"


def behaviour_for(label: str | None) -> str:
    return BEHAVIOURS.get(label or "", DEFAULT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", default="tcp://127.0.0.1:5556", help="emotion server address (default %(default)s)")
    p.add_argument("--bodies", nargs="*", default=None, help="body ids to react to (default: all)")
    p.add_argument("--min-confidence", type=float, default=0.0, help="ignore less confident events")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = p.parse_args(argv)

    current: dict[tuple[str, str], str | None] = {}  # (sensor, body) -> stable label acted on
    end = None if args.duration is None else time.monotonic() + args.duration
    with bodytalk.subscribe(args.addr, bodies=args.bodies, min_confidence=args.min_confidence) as events:
        while end is None or time.monotonic() < end:
            event = events.poll(timeout=0.5 if end is None else max(0.0, min(0.5, end - time.monotonic())))
            if event is None or event.stable_label is None:
                continue
            key = (event.sensor, event.body)
            if current.get(key) != event.stable_label:
                current[key] = event.stable_label
                print(f"body {event.sensor}/{event.body}: {event.stable_label} -> {behaviour_for(event.stable_label)}",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
