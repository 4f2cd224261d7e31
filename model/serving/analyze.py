"""``bodytalk analyze``: label (and explain) every window of any source, offline.

Prints per window and body: time span, label, probabilities, the movement descriptors, and with
--explain the explanation and the claims in it that the descriptors do not support. A body (or a
file) shorter than the window gives one window padded by reflection in time, printed as
``padded (N real frames)`` (JSON: ``padded``, ``real_frames``); under 0.5 s of real motion it is
read as insufficient data, with the reason. A source with no frames at all exits 1.

Examples:
  bodytalk analyze --source synthetic:?bodies=2&duration=10
  bodytalk analyze --source bvh:../shared/data/bandai-namco-ds1/data/dataset-1_walk_sad_001.bvh --explain
  bodytalk analyze --source session:demo.mcap --json > readings.jsonl
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from itertools import islice
from typing import Iterator

from bodytalk.capture import source as sources
from bodytalk.capture.windowing import Window, windows_of
from bodytalk.model.constants import LABEL_PATH_HELP
from bodytalk.model.skeleton.features import WindowInput
from bodytalk.model.registry import load_model

log = logging.getLogger("bodytalk.analyze")


def _batches(it: Iterator[Window], n: int) -> Iterator[list[Window]]:
    while batch := list(islice(it, n)):
        yield batch


def analyze(model, src: sources.Source, explain: bool, path: str, batch: int, window: float,
            hop: float) -> Iterator[dict]:
    """One result dict per window (the --json schema)."""
    for wins in _batches(windows_of(src, window, hop), batch):
        inputs = [WindowInput(w.joints, w.confidence, src.fps, src.layout.id, w.real_frames) for w in wins]
        readings = model.recognise(inputs, path=path)
        ok = [i for i, r in enumerate(readings) if r.status == "ok"]
        texts = {}
        if explain and model.llm is not None and ok:
            got = model.explain([inputs[i] for i in ok], [readings[i].label for i in ok])
            texts = dict(zip(ok, got))
        for i, (w, r) in enumerate(zip(wins, readings)):
            text, bad = texts.get(i, (None, []))
            yield {"t_start": round(w.t_start, 3), "t_end": round(w.t_end, 3), "body": str(w.body),
                   "status": r.status, "label": r.label, "probs": {k: round(v, 4) for k, v in r.probs.items()},
                   "descriptors": r.descriptors.to_jsonable() if r.descriptors else {},
                   "mgs": [dict(m, t_start=round(m["t_start"] + w.t_start, 3), t_end=round(m["t_end"] + w.t_start, 3))
                           for m in r.mgs.to_jsonable()["present"]] if r.mgs else [],
                   "explanation": text, "unsupported": [c.text for c in bad],
                   "truth": w.labels or None, "reason": r.reason,
                   "padded": w.padded, "real_frames": w.real_frames}


def _human(row: dict, out) -> None:
    head = f"{row['t_start']:7.2f}-{row['t_end']:7.2f}s  body {row['body']:>3}  "
    if row["padded"]:
        head += f"padded ({row['real_frames']} real frames)  "
    if row["status"] != "ok":
        out.write(head + f"insufficient data: {row['reason']}\n")
        return
    probs = "  ".join(f"{k} {v:.2f}" for k, v in sorted(row["probs"].items(), key=lambda kv: -kv[1]))
    truth = f"  (truth: {row['truth'].get('emotion')})" if row["truth"] and "emotion" in row["truth"] else ""
    out.write(head + f"{row['label']:<10} {probs}{truth}\n")
    if row["mgs"]:
        out.write(f"{'':18}micro-gestures: " + ", ".join(
            f"{m['name']} {m['t_start']:.1f}-{m['t_end']:.1f}s" for m in row["mgs"]) + "\n")
    if row["explanation"] is not None:
        out.write(f"{'':18}why: {row['explanation'] or '(nothing grounded was said)'}\n")
        if row["unsupported"]:
            out.write(f"{'':18}unsupported, removed: {'; '.join(row['unsupported'])}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bodytalk analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="source URI (see `bodytalk sources`)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the demo model)")
    p.add_argument("--explain", action="store_true", help="also generate grounded explanations (needs the LLM)")
    p.add_argument("--json", action="store_true", help="one JSON object per window")
    p.add_argument("--path", choices=("auto", "llm", "head"), default="auto", help=LABEL_PATH_HELP)
    p.add_argument("--batch", type=int, default=16, help="windows per batch (default %(default)s)")
    p.add_argument("--window", type=float, default=2.0, help="window seconds (default %(default)s)")
    p.add_argument("--hop", type=float, default=0.5, help="hop seconds (default %(default)s)")
    args = p.parse_args(argv)
    try:
        # The source first: a missing file is named at once, not after seconds of model loading.
        src = sources.create(args.source)
        src.open()
    except (sources.SourceError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 2
    rows = 0
    try:
        model = load_model(args.model, with_llm=args.path != "head")
        for row in analyze(model, src, args.explain, args.path, args.batch, args.window, args.hop):
            if args.json:
                sys.stdout.write(json.dumps(row) + "\n")
            else:
                _human(row, sys.stdout)
            sys.stdout.flush()
            rows += 1
    except (FileNotFoundError, ValueError) as err:   # the checkpoint
        log.error("%s", err)
        return 2
    except sources.SourceError as err:
        log.error("%s", err)
        return 1
    except BrokenPipeError:
        return 0
    finally:
        src.close()
    if not rows:
        log.error("%s gave no frames: nothing to analyze", args.source)
        return 1
    return 0
