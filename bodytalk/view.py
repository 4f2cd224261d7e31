"""The live terminal view of emotion events: per body the stable label, probabilities as bars,
the latest explanation and the end-to-end latency."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bodytalk.stream import schema

BAR = 24  # characters of a full probability bar


@dataclass
class BodyState:
    last: schema.EmotionEvent
    explanation: str | None = None
    unsupported: list = field(default_factory=list)
    events: int = 0
    seen: float = field(default_factory=time.monotonic)


class LiveView:
    """Keeps the latest event per (sensor, body) and renders them as a rich table."""

    def __init__(self, title: str = "bodytalk", no_explanation: str = "…") -> None:
        self.title = title
        self.no_explanation = no_explanation  # what the "why" column says before/without explanations
        self.bodies: dict[tuple[str, str], BodyState] = {}
        self.status: dict[str, schema.Status] = {}

    def update(self, msg: schema.Message) -> None:
        if isinstance(msg, schema.Status):
            self.status[msg.component] = msg
            return
        if not isinstance(msg, schema.EmotionEvent):
            return
        key = (msg.sensor, msg.body)
        state = self.bodies.get(key)
        if state is None:
            state = self.bodies[key] = BodyState(last=msg)
        state.last, state.seen = msg, time.monotonic()
        state.events += 1
        if msg.explanation:
            state.explanation, state.unsupported = msg.explanation, list(msg.unsupported)

    def render(self) -> Panel:
        table = Table(expand=True, show_lines=True)
        for col, kw in (("body", {"width": 16}), ("stable label", {"width": 14}),
                        ("probabilities", {"ratio": 2}), ("why (latest explanation)", {"ratio": 3}),
                        ("latency", {"width": 9, "justify": "right"})):
            table.add_column(col, **kw)
        now = time.monotonic()
        for (sensor, body), st in sorted(self.bodies.items()):
            ev = st.last
            stale = " (lost)" if now - st.seen > 3.0 else ""
            label = Text(f"{ev.stable_label or '…'}{stale}", style="bold")
            if ev.status != "ok":
                label = Text(ev.status.replace("_", " "), style="yellow")
            table.add_row(f"{sensor}/{body}", label, _bars(ev.probs, ev.stable_label),
                          _why(st, self.no_explanation), f"{ev.latency_ms.get('total', float('nan')):.0f} ms")
        footer = "  ".join(f"{c}: {s.state} {s.rate_hz:.0f}/s" for c, s in sorted(self.status.items()))
        return Panel(Group(table, Text(footer, style="dim")), title=self.title)


def _bars(probs: dict, stable: str | None) -> Text:
    out = Text()
    width = max((len(k) for k in probs), default=0)
    for name, p in sorted(probs.items(), key=lambda kv: -kv[1]):
        n = int(round(p * BAR))
        style = "green" if name == stable else "cyan"
        out.append(f"{name:<{width}} ")
        out.append("█" * n, style=style)
        out.append("·" * (BAR - n), style="dim")
        out.append(f" {p:4.0%}\n")
    return out


def _why(st: BodyState, placeholder: str) -> Text:
    if not st.explanation:
        return Text(placeholder, style="dim")
    text = Text(st.explanation)
    if st.unsupported:
        text.append(f"\n({len(st.unsupported)} unsupported claim(s) removed)", style="dim")
    return text


def print_json(msg: schema.EmotionEvent, out=sys.stdout) -> None:
    """Headless mode: one JSON object per emotion event."""
    out.write(json.dumps(schema.to_jsonable(msg)) + "\n")
    out.flush()
