"""Encoder budget (issue 15): features + encoder for one 2 s window on one core, per checkpoint.

The issue's budget is "encoder + features < 10 ms per window on one core". This times exactly those
two steps (``EncoderConfig.featurise`` of one synthetic window, then the encoder's forward pass:
every trunk of an ensemble and its statistics stream), and the descriptors beside them for scale;
``bench_model.py`` times the whole tokenizer side (with micro-gestures and the projector) and
``bench_serve.py`` the served path. Several checkpoints in one run compare on the same load.

    python benchmarks/bench_encoder.py --models demo,runs/bandai-head-folds/walk/checkpoint
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bodytalk.capture.windowing import WindowConfig
from bodytalk.model import checkpoint, registry
from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.skeleton.features import WindowInput
from bodytalk.train.readers import read

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, publish  # noqa: E402


def percentiles(fn, reps: int) -> tuple[float, float]:
    """p50 and p95 in ms of ``reps`` calls after 10 warm-up calls."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="demo", help="comma-separated checkpoints ('demo': the packaged model)")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    raw = read("synthetic:?bodies=1&duration=6&seed=5", WindowConfig(), None)
    w = WindowInput(raw.joints[3], raw.confidence[3])
    header = machine()
    rows = ["| checkpoint | trunks + statistics | features p50 / p95 | encoder p50 / p95 | features + encoder p50 / p95 "
            "| descriptors p50 / p95 |", "|---|---|---|---|---|---|"]
    for name in args.models.split(","):
        enc = checkpoint.load(registry.default_checkpoint() if name == "demo" else name).encoder
        x, ids = torch.from_numpy(enc.cfg.featurise(w))[None], enc.layout_ids([w.layout])
        cells = [percentiles(fn, args.reps) for fn in (
            lambda: enc.cfg.featurise(w), lambda: enc(x, ids),
            lambda: enc(torch.from_numpy(enc.cfg.featurise(w))[None], ids),
            lambda: desc.compute(w.joints, w.confidence, w.fps))]
        kind = f"{enc.cfg.members}{' + statistics' if enc.cfg.statistics else ''}"
        rows.append(f"| {name} | {kind} | " + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in cells) + " |")
    table = (f"Measured on {header}. One thread, one window, {args.reps} repetitions, ms. Command: "
             f"`python benchmarks/bench_encoder.py --models {args.models}`. Budget: features + encoder < 10 ms.\n\n"
             + "\n".join(rows))
    return publish(table, args.write, "bench_encoder")


if __name__ == "__main__":
    raise SystemExit(main())
