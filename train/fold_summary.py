"""What a fold sweep reports: per fold, pooled over the folds, and mean / std over them.

Pooled means every held-out window of every fold in one set; each clip is held out exactly once,
which ``summarise`` checks. ``write`` puts OUT/<name>.json, OUT/<name>.md and OUT/confusion.png
(the pooled windows' row-normalised confusion, one matrix a label path).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bodytalk.train import evaluate, report
from bodytalk.train.data import DataConfig
from bodytalk.train.splits import SplitError

if TYPE_CHECKING:
    from bodytalk.train.folds import SweepConfig

METRICS = ("accuracy", "macro_f1", "clip_accuracy", "clip_macro_f1")


def summarise(done: dict[str, tuple[dict, dict]], left_out: dict[str, str], data_cfg: DataConfig,
              cfg: SweepConfig, command: str) -> dict:
    """Per fold, pooled over all folds (one set of every held-out window), and mean / std over folds."""
    labels = tuple(next(iter(done.values()))[0]["labels"]) if done else ()
    folds, pooled, over = [], {}, {}
    for value, (r, _) in done.items():
        folds.append({"fold": value, "split": r["split"], "windows": r["windows"], "clips": r["clips"],
                      "padded": r.get("padded"), "paths": {p: {k: m[k] for k in METRICS} for p, m in r["paths"].items()},
                      "skipped": r["skipped"]})
    for path in [p for p in cfg.paths if any(p in r["paths"] for r, _ in done.values())]:
        preds = [p for r, p in done.values() if path in r["paths"]]
        ids = [set(p["clip"].tolist()) for p in preds]
        if len(set().union(*ids)) != sum(map(len, ids)):
            raise SplitError(f"pooling {path}: a clip is held out by two folds; the fold folders are stale")
        _, clip_index = np.unique(np.concatenate([p["clip"] for p in preds]), return_inverse=True)
        pooled[path] = report.classification(np.concatenate([p["truth"] for p in preds]),
                                             np.concatenate([p[path] for p in preds]), clip_index, labels)
        pooled[path]["folds"] = len(preds)
        values = {k: [f["paths"][path][k] for f in folds if path in f["paths"]] for k in METRICS}
        over[path] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in values.items()}
    graded = [r["explanations"] for r, _ in done.values() if r.get("explanations")]
    sentences = sum(e["sentences"] for e in graded)
    grounding = {"explanations": sum(e["count"] for e in graded), "sentences": sentences,
                 "grounding_rate": sum(e["grounded_sentences"] for e in graded) / sentences,
                 **{k: sum(e[k] for e in graded) for k in evaluate.GRADES   # results written before a count lack it
                    if all(k in e for e in graded)}} if sentences else None
    return {"config": cfg.config, "overrides": list(cfg.overrides), "command": command,
            "data": [d.uri for d in data_cfg.datasets], "group": data_cfg.split.group, "labels": list(labels),
            "paths": list(cfg.paths), "windows": sum(f["windows"] for f in folds),
            "clips": sum(f["clips"] for f in folds), "padded": _padded_total(folds), "folds": folds, "left_out": left_out,
            "pooled": pooled, "over_folds": over, "grounding": grounding}


def _padded_total(folds: list[dict]) -> dict[str, int] | None:
    """Padded clips and windows over the folds (None when a fold's results predate the count)."""
    if not folds or any(f["padded"] is None for f in folds):
        return None
    return {k: sum(f["padded"][k] for f in folds) for k in ("clips", "windows")}


def markdown(s: dict) -> str:
    """One table per label path: a row per fold, the pooled row, the mean +- std row."""
    lines = [f"# Leave-one-{s['group']}-out: `{s['config']}`, {len(s['folds'])} fold(s)", "",
             f"- data: `{'`, `'.join(s['data'])}`; labels: {', '.join(s['labels'])}",
             f"- {s['windows']} held-out windows in {s['clips']} clips; pooled = all folds' held-out windows "
             "as one set (each clip is held out once); mean ± std over folds (ddof 0)",
             f"- padded (clips shorter than the window, one reflected window each): "
             f"{report.padded_text(s.get('padded'))}"]
    lines += [f"- left out: {v} ({why})" for v, why in s["left_out"].items()]
    for path, pooled in s["pooled"].items():
        lines += ["", f"## {report.PATH_NAMES.get(path, path)}", "",
                  f"| held out ({s['group']}) | windows | clips | window acc | window macro-F1 | clip acc | clip macro-F1 |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {f['fold']} | {f['windows']} | {f['clips']} | "
                  + " | ".join(f"{f['paths'][path][k]:.3f}" for k in METRICS) + " |"
                  for f in s["folds"] if path in f["paths"]]
        lines.append(f"| **pooled** ({pooled['folds']} folds) | {pooled['windows']} | {pooled['clips']} | "
                     + " | ".join(f"**{pooled[k]:.3f}**" for k in METRICS) + " |")
        lines.append("| mean ± std over folds | | | "
                     + " | ".join(f"{m['mean']:.3f} ± {m['std']:.3f}" for m in s["over_folds"][path].values()) + " |")
    if g := s["grounding"]:
        lines += ["", f"Explanations: {g['explanations']} over all folds; grounding rate {g['grounding_rate']:.3f} "
                      f"of {g['sentences']} sentences (per fold: OUT/<fold>/eval/report.md). "
                      + (report.grading_text({"count": g["explanations"], **g}) if "names_label" in g else "")]
    skipped = {f"{p}: {why}" for f in s["folds"] for p, why in f["skipped"].items()}
    lines += [""] + [f"Not scored: {x}" for x in sorted(skipped)]
    lines += ["", f"Command: `{s['command']}`", ""]
    return "\n".join(lines)


def write(summary: dict, out: Path, name: str = "summary", text: str | None = None) -> None:
    """OUT/<name>.json, OUT/<name>.md (``text``, default the fold tables) and, with pooled figures,
    OUT/confusion.png (one matrix a path)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2))
    (out / f"{name}.md").write_text(markdown(summary) if text is None else text)
    if summary["pooled"]:   # the pooled windows' confusion, one matrix a path: which labels are taken for which
        title = f"leave-one-{summary['group']}-out, {len(summary['folds'])} folds pooled"
        report.plot_confusions({"paths": summary["pooled"], "labels": summary["labels"], "split": title},
                               out / "confusion.png")
