"""Server memory under long windows: RSS of an in-process ``Server`` (encoder checkpoint, head
path) before and after it reads N windows of about T frames each (distinct lengths, as a varied
stream has). Prints one line per stage.

  PYTHONPATH=. python benchmarks/bench_long_windows.py --windows 16 --frames 1200 --fps 60
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import psutil
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=16)
    p.add_argument("--frames", type=int, default=1200)
    p.add_argument("--fps", type=float, default=60.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    from bodytalk.model.serving.server import ServeConfig, Server
    from tests.helpers import Collect
    from tests.model.serving.helpers import ListIntake, encoder_checkpoint, synthetic_windows
    from bodytalk.model.registry import load_model

    proc = psutil.Process()
    model = load_model(str(encoder_checkpoint(Path(tempfile.mkdtemp()) / "ck")), with_llm=False)
    w = synthetic_windows(bodies=1, seconds=4.0)[0]
    longs = []
    for i in range(args.windows):
        t = args.frames - i
        longs.append(dataclasses.replace(
            w, seq=i, fps=args.fps, t_end=w.t_start + (t - 1) / args.fps,
            joints=np.resize(w.joints, (t, *w.joints.shape[1:])),
            confidence=np.resize(w.confidence, (t, w.confidence.shape[1])), interpolated=np.zeros(t, bool)))
    pub = Collect()
    server = Server(ServeConfig(explain=False, path="head"), model, pub, ListIntake([w]))
    server.step(0)
    print(f"warm (one 2 s window): RSS {proc.memory_info().rss / 1e6:.0f} MB")
    server.intake = ListIntake(longs)
    while server.step(0):
        pass
    statuses = [e.status for e in pub.msgs[1:]]
    print(f"after {args.windows} windows of ~{args.frames} frames at {args.fps:g} Hz: RSS "
          f"{proc.memory_info().rss / 1e6:.0f} MB (events: {statuses.count('ok')} ok, "
          f"{len(statuses) - statuses.count('ok')} other)")


if __name__ == "__main__":
    main()
