"""How much of the content does a head checkpoint's embedding give away? (a diagnostic, README issue 15).

For each fold checkpoint of a sweep (``bodytalk train --folds ... --out OUT``), every training window
goes through the encoder, and each trunk's pooled tokens (what its label head reads, ``[M * D]``)
feed two logistic-regression probes. They are scored by 5-fold cross-validation grouped by clip, so a
probe never sees a window of the clip it is asked about:

- the *content* probe: which content (``--group``) the window is from. Well above the majority share
  says the embedding carries the content from clip to clip, which a content adversary
  (``pretrain.adversary``) is meant to remove;
- the *style* probe: its label, the same way (in-sample for the encoder: it trained on these windows).

    python benchmarks/content_probe.py runs/hop25 runs/adv03 --folds walk,bow,walk-back [--write BENCHMARKS.md]
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from bodytalk.model import checkpoint
from bodytalk.train import config as config_io, data
from bodytalk.train.run import stage_config
from bodytalk.train.views import WindowDataset
from bodytalk.train.windowset import WindowSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, publish  # noqa: E402


@torch.no_grad()
def embeddings(folder: Path, windows: WindowSet | None) -> tuple[np.ndarray, WindowSet, WindowSet]:
    """``[N, M * D]`` pooled tokens of the fold's training windows, those windows, and every window."""
    ck = checkpoint.load(folder / "checkpoint")
    if windows is None:
        _, cfg = stage_config(config_io.load_raw(str(folder / "config.yaml"), []), str(folder / "config.yaml"))
        windows = data.load(cfg.data, progress=False)
    train = windows.take(ck.meta["split"]["train"])
    enc = ck.encoder.eval()
    feats = []
    for x, layout, _ in DataLoader(WindowDataset(train, enc.cfg.layouts, enc.cfg.frames, version=enc.cfg.features),
                                   batch_size=256):
        out = enc(x, layout)
        feats.append(out.get("member_pooled", out["pooled"][None]).permute(1, 0, 2).reshape(len(x), -1))
    return torch.cat(feats).numpy(), train, windows


def probe(x: np.ndarray, y: np.ndarray, clip: np.ndarray) -> float:
    """Accuracy of a standardised logistic regression, 5 folds grouped by clip."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # a content with one clip cannot be right: that is the point
        return float(cross_val_score(model, x, y, groups=clip, cv=GroupKFold(min(5, len(set(clip))))).mean())


def table(sweeps: list[Path], folds: list[str], group: str) -> str:
    rows = ["| sweep | fold | training windows | content probe | majority content share | style probe |",
            "|---|---|---|---|---|---|"]
    windows = None
    for sweep in sweeps:
        for fold in folds:
            if not (sweep / fold / "checkpoint").is_dir():
                raise SystemExit(f"{sweep / fold}: no checkpoint (OUT/<fold>/checkpoint)")
            x, train, windows = embeddings(sweep / fold, windows)
            content = np.array([train.clips[c].groups.get(group, "") for c in train.clip])
            share = np.unique(content, return_counts=True)[1].max() / len(content)
            rows.append(f"| `{sweep}` | {fold} | {len(x)} | {probe(x, content, train.clip):.3f} | {share:.3f} | "
                        f"{probe(x, train.label, train.clip):.3f} |")
    return (f"Content and style probes on the training windows' pooled tokens. Command: `python "
            f"benchmarks/content_probe.py {' '.join(map(str, sweeps))} --folds {','.join(folds)} --group {group}`. "
            f"Machine: {machine()}.\n\n" + "\n".join(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", type=Path, nargs="+", help="fold sweep OUT folders of one benchmark")
    ap.add_argument("--folds", default="walk,bow,walk-back", help="comma-separated fold names to probe")
    ap.add_argument("--group", default="content", help="the clip group the content probe names")
    ap.add_argument("--write", type=Path, help="also replace this script's section of a BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    return publish(table(args.sweeps, args.folds.split(","), args.group), args.write, "content_probe")


if __name__ == "__main__":
    raise SystemExit(main())
