"""Evaluation results as files: ``results.json``, a short ``report.md`` and ``confusion.png``.

``classification(y, probs, clip, labels)`` scores one label path per window and per clip (a
clip's label = the argmax of its windows' mean probabilities). Macro-F1 averages over the labels
that occur in the evaluated data; a label that does not occur has no recall (``null``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bodytalk.train.baselines import predict

PATH_NAMES = {"llm": "LLM label path (LoRA)", "head": "encoder head (baseline b)",
              "descriptors": "descriptors + logistic regression (baseline a)",
              "cnn": "plain temporal CNN on the encoder input (baseline c)"}


def classification(y: np.ndarray, probs: np.ndarray, clip: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1, per-class recall and confusion matrix (rows: truth; readable windows), per
    window and per clip."""
    from sklearn.metrics import confusion_matrix, f1_score

    present = sorted(set(y.tolist()))
    pred = predict(probs)
    cm = confusion_matrix(y, pred, labels=list(range(len(labels))))
    support = np.bincount(y, minlength=len(labels))          # unreadable windows count against recall
    recall = {lab: (float(cm[i, i] / support[i]) if support[i] else None) for i, lab in enumerate(labels)}
    clips = np.unique(clip)
    clip_true = np.array([y[clip == c][0] for c in clips])
    clip_pred = np.array([_clip_vote(probs[clip == c]) for c in clips])
    return {"windows": int(len(y)), "unreadable": int((pred < 0).sum()),
            "accuracy": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
            "per_class_recall": recall, "confusion": cm.tolist(),
            "clips": int(len(clips)), "clip_accuracy": float((clip_pred == clip_true).mean()),
            "clip_macro_f1": float(f1_score(clip_true, clip_pred, labels=present, average="macro", zero_division=0))}


def _clip_vote(rows: np.ndarray) -> int:
    ok = np.isfinite(rows).all(1)
    return int(rows[ok].mean(0).argmax()) if ok.any() else -1


def padded_text(p: dict | None) -> str:
    """``{"clips": c, "windows": w}`` as report text (results written before padding: unknown)."""
    return "not recorded" if p is None else f"{p['clips']} clip(s), {p['windows']} window(s)"


def grading_text(e: dict) -> str:
    """The explanation counts of eval's grounding grading, as one line."""
    why = (f" {e['says_why']} cite a measured reason for their label ({e['reason_available']} windows had one"
           f" to cite)." if "says_why" in e else "")   # results written before this count have none
    return (f"Of {e['count']} explanations: {e['grounded']} fully grounded, {e['names_label']} name the label "
            f"they explain, {e['repeated']} repeat a claim, {e['contradictory']} contradict one.{why}")


def markdown(r: dict) -> str:
    """A short human report of ``results``."""
    lines = [f"# bodytalk eval: {r['model']}", "",
             f"- data: `{'`, `'.join(r['data'])}`", f"- split: **{r['split']}** ({r['split_note']})",
             f"- windows: {r['windows']} in {r['clips']} clips; labels: {', '.join(r['labels'])}",
             f"- padded (clips shorter than the window, one reflected window each): "
             f"{padded_text(r.get('padded'))}", "",
             "| path | window acc | window macro-F1 | clip acc | clip macro-F1 | windows/s |",
             "|---|---|---|---|---|---|"]
    for path, m in r["paths"].items():
        lines.append(f"| {PATH_NAMES.get(path, path)} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | "
                     f"{m['clip_accuracy']:.3f} | {m['clip_macro_f1']:.3f} | {m.get('windows_per_s', 0):.1f} |")
    for path, why in r.get("skipped", {}).items():
        lines.append(f"| {PATH_NAMES.get(path, path)} | skipped: {why} | | | | |")
    lines += ["", "Per-class recall (windows):", "",
              "| path | " + " | ".join(r["labels"]) + " |", "|---|" + "---|" * len(r["labels"])]
    for path, m in r["paths"].items():
        recall = m["per_class_recall"]
        cells = ["-" if recall[lab] is None else f"{recall[lab]:.2f}" for lab in r["labels"]]
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    e = r.get("explanations")
    if e:
        lines += ["", f"Explanations: {e['count']} generated; grounding rate {e['grounding_rate']:.3f} "
                      f"({e['grounded_sentences']}/{e['sentences']} sentences without an unsupported claim); "
                      f"{e['fully_grounded']:.0%} of explanations fully grounded.", ""]
        if "names_label" in e:   # results written before these counts have none
            lines += [grading_text(e), ""]
        lines += [f"- *{x['label']}* (truth {x['truth']}): {x['text']}"
                  + (f"  — unsupported: {'; '.join(x['unsupported'])}" if x["unsupported"] else "")
                  for x in e["examples"]]
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def plot_confusions(r: dict, out: Path) -> Path:
    """One row-normalised confusion matrix per label path, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths, labels = list(r["paths"]), r["labels"]
    fig, axes = plt.subplots(1, len(paths), figsize=(4.2 * len(paths), 4.0), squeeze=False)
    for ax, path in zip(axes[0], paths):
        cm = np.array(r["paths"][path]["confusion"], dtype=float)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i, j in np.ndindex(cm.shape):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_title(f"{path}: acc {r['paths'][path]['accuracy']:.2f}", fontsize=9)
    axes[0][0].set_ylabel("true")
    fig.suptitle(f"split {r['split']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write(r: dict, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "results.json", "markdown": folder / "report.md", "png": folder / "confusion.png"}
    files["json"].write_text(json.dumps(r, indent=2))
    files["markdown"].write_text(markdown(r))
    plot_confusions(r, files["png"])
    return files
