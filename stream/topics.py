"""Every topic name on the bus, built here and nowhere else.

Topics are dotted so a subscriber filters by prefix (ZeroMQ SUB matches byte prefixes):
``skeleton.window.`` gets every window of every sensor, ``skeleton.window.kinect0.`` one sensor's.
"""
from __future__ import annotations

import re

DEFAULT_CAPTURE_ADDR = "tcp://127.0.0.1:5555"
DEFAULT_SERVER_ADDR = "tcp://127.0.0.1:5556"
DEFAULT_WORK_ADDR = "tcp://127.0.0.1:5557"  # tokenizer workers -> LLM server (PUSH/PULL)
DEFAULT_BROKER_ADDR = "tcp://127.0.0.1:5559"  # `bodytalk broker`: many publishers, one address
DEFAULT_SNAPSHOT_ADDR = "tcp://127.0.0.1:5560"  # latest event per body, for late joiners (REQ/ROUTER)

SKELETON = "skeleton."
FRAME = "skeleton.frame."
WINDOW = "skeleton.window."
EMOTION = "emotion."
EMOTION_TEXT = "emotion.text."
STATUS = "status."
WORK = "work."  # tokenizer worker -> LLM server, PUSH/PULL only (never on a PUB bus)

# One dotted segment: sensor names, body ids and component names never contain dots or spaces.
_PART = re.compile(r"^[A-Za-z0-9_\-]+$")


def part(name: object) -> str:
    """Validate one topic segment (sensor, body id, component)."""
    text = str(name)
    if not _PART.match(text):
        raise ValueError(f"topic segment {text!r} must be letters, digits, '_' or '-' (no dots)")
    return text


def frame(sensor: str) -> str:
    return FRAME + part(sensor)


def window(sensor: str, body: object) -> str:
    return f"{WINDOW}{part(sensor)}.{part(body)}"


def emotion(sensor: str, body: object) -> str:
    return f"{EMOTION}{part(sensor)}.{part(body)}"


def emotion_text(sensor: str, body: object) -> str:
    return f"{EMOTION_TEXT}{part(sensor)}.{part(body)}"


def work(sensor: str, body: object) -> str:
    return f"{WORK}{part(sensor)}.{part(body)}"


def status(component: str) -> str:
    return STATUS + part(component)


def split(topic: str) -> list[str]:
    """``'skeleton.window.kinect0.3'`` -> ``['skeleton', 'window', 'kinect0', '3']``."""
    return topic.split(".")


def printable(text: str) -> str:
    """``text`` for a terminal: control and format characters (ESC, CSI, BEL, bidi overrides) as
    ``\\x..`` / ``\\u....`` escapes, so a recorded topic or a message field cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def add_subscription_arguments(parser, doing: str) -> None:
    """``--sub ADDR`` and ``--topic PREFIX`` for a command that reads the bus (``doing``: "record", ...)."""
    parser.add_argument("--sub", default=DEFAULT_CAPTURE_ADDR, help="address to subscribe to (default %(default)s)")
    parser.add_argument("--topic", default="", help=f"{doing} only topics starting with this prefix (default: all)")
