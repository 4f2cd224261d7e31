"""``bodytalk eval``: measure a checkpoint on data it did not train on, against two baselines.

    bodytalk eval --model runs/bandai/checkpoint                      # its own held-out split
    bodytalk eval --model model/assets/demo --data 'synthetic:?bodies=3&duration=60&seed=7' --split all
    bodytalk eval --model CKPT --data bvh:DIR --label-key style --classes angry,sad,normal \\
        --rename normal=neutral --split all --out runs/eval/x --json

Label paths, scored on the same windows: the LLM label path, the encoder's head (baseline b),
descriptors + logistic regression fitted on the checkpoint's training windows (baseline a), and
a plain temporal CNN over the encoder's input fitted on them too (baseline c, ``--paths ...,cnn``). Per
path: accuracy, macro-F1, per-class recall and confusion matrix per window, and accuracy and
macro-F1 per clip (mean probabilities over its windows). Every clip counts: a clip shorter than
the window is scored on its one padded window, and results count the padded clips and windows
(``padded``). Explanations are generated for
``--explain N`` windows (for the LLM's label) and graded by the grounding check: the grounding
rate is the share of their sentences without an unsupported claim (graded as served: a clause cut
off by the token limit is trimmed first, nothing else is dropped), and the explanations are counted:
``grounded`` (no unsupported claim), ``names_label`` (the first label they name is the one they
explain), ``repeated`` / ``contradictory`` (holding a claim that repeats or contradicts an earlier
one about the same quantity, which serving drops), ``says_why`` (citing at least one measured
phrase that supports the label by its cues, ``evidence_text.cited_support``) out of
``reason_available`` (windows with such a phrase to cite).

``--data`` must end: a live sensor or ``synthetic:`` without ``duration`` is refused up front
with how to bound it (``synthetic:?duration=60``; record a live take and use ``session:``).

Which windows (``--split``):
  test  the test clips recorded in the checkpoint (the data must be its training data);
  all   every clip of ``--data``, refused if the checkpoint trained on any of them;
  auto  (default) ``test`` for the checkpoint's own data, ``all`` for other data.
Writes OUT/results.json, OUT/report.md, OUT/confusion.png; ``--json`` also prints the JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from bodytalk.capture.source import SourceError, parse_uri
from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.skeleton.features import InsufficientData
from bodytalk.model.text import evidence_text, grounding
from bodytalk.train import baselines, config as config_io, report, warmstart
from bodytalk.train.config import ConfigError
from bodytalk.train.data import DataConfig, DatasetError, DatasetSpec, check_uri, load
from bodytalk.train.windowset import WindowSet
from bodytalk.train.labels import LabelError
from bodytalk.train.splits import Split, SplitError

log = logging.getLogger("bodytalk.eval")


def same_uri(a: str, b: str) -> bool:
    """Two dataset URIs that name the same data (paths compared resolved, options exactly)."""
    (sa, ta, oa), (sb, tb, ob) = parse_uri(a), parse_uri(b)
    if sa != sb or oa != ob:
        return False
    return ta == tb or (bool(ta) and bool(tb) and Path(ta).expanduser().resolve() == Path(tb).expanduser().resolve())


@dataclasses.dataclass
class Selection:
    cfg: DataConfig               # what is evaluated
    test: WindowSet
    name: str                     # the split, as results name it
    note: str
    train_cfg: DataConfig | None  # the checkpoint's training data (baseline a's training set) ...
    train_ids: tuple[str, ...]    # ... and its training clips


def select(meta: dict, labels: tuple[str, ...], uri: str | None, split: str, opts: argparse.Namespace) -> Selection:
    """Resolve ``--data`` / ``--split`` against what the checkpoint recorded (see module doc)."""
    trained = config_io.parse(DataConfig, meta["data_config"]) if meta.get("data_config") else None
    recorded = Split.from_dict(meta["split"]) if meta.get("split") else None
    if uri is None and trained is None:
        raise ConfigError("this checkpoint records no training data: give --data URI")
    specs = trained.datasets if uri is None else (_spec(uri, trained, opts),)
    # Encoder-only (pre-training) checkpoints record their dataset URIs but no data config.
    recorded_uris = [t.uri for t in trained.datasets] if trained else list(meta.get("datasets", []))
    own = all(any(same_uri(s.uri, u) for u in recorded_uris) for s in specs)
    base = trained or DataConfig(datasets=specs)
    cfg = dataclasses.replace(base, datasets=tuple(specs), labels=labels)
    train_ids = recorded.train if recorded else ()
    windows = load(cfg, progress=False)
    kind = ("test" if own else "all") if split == "auto" else split
    if kind == "test":
        if own and recorded is not None and not recorded.test:
            raise SplitError(f"this checkpoint trained on every clip of its data (split {recorded.name}): "
                             "evaluate it on data it never saw, with --data URI --split all")
        if not own or recorded is None:
            raise SplitError("--split test needs the checkpoint's own training data and recorded split; "
                             "for other data use --split all")
        test = windows.take(recorded.test)
        name, note = recorded.name, "test side of the checkpoint's split: clips it never trained on"
    else:
        if own and (leaked := sorted(set(windows.counts()) & set(train_ids))):
            raise SplitError(f"the checkpoint trained on {len(leaked)} clip(s) of this data (e.g. {leaked[0]}): "
                             "use --split test")
        test = windows
        name, note = "all", "every clip of data the checkpoint never trained on"
    if not len(test):
        raise SplitError(f"split {name}: no windows to evaluate")
    if opts.max_windows:
        test = warmstart.pick(test, opts.max_windows, 0)
        note += f"; a seeded subset of {len(test)} windows"
    return Selection(cfg, test, name, note, trained, train_ids)


def _spec(uri: str, trained: DataConfig | None, o: argparse.Namespace) -> DatasetSpec:
    match = next((t for t in (trained.datasets if trained else ()) if same_uri(t.uri, uri)), None)
    fields = dataclasses.asdict(match) if match else {}
    given = {"label_key": o.label_key, "classes": tuple(o.classes.split(",")) if o.classes else None,
             "rename": dict(kv.split("=", 1) for kv in o.rename.split(",")) if o.rename else None, "name": o.name}
    return DatasetSpec(**{**fields, **{k: v for k, v in given.items() if v is not None}, "uri": uri})


# What eval counts of its graded explanations (the module doc says what each means).
GRADES = ("grounded", "names_label", "repeated", "contradictory", "says_why", "reason_available")


def _descriptors(window) -> desc.Descriptors:
    return desc.compute(window.joints, window.confidence, window.fps)


def explanations(model, inputs, probs: np.ndarray, truth: np.ndarray, count: int, batch: int = 8) -> dict | None:
    """Generate ``count`` explanations over evenly spread readable windows and grade them."""
    ok = np.flatnonzero(np.isfinite(probs).all(1))
    if model.llm is None or count <= 0 or not len(ok):
        return None
    chosen = ok[np.linspace(0, len(ok) - 1, min(count, len(ok))).round().astype(int)]
    labels = [model.labels[i] for i in probs[chosen].argmax(1)]
    rows, sentences, grounded = [], 0, 0
    counts = dict.fromkeys(GRADES, 0)
    for s in range(0, len(chosen), batch):
        idx = chosen[s:s + batch]
        try:
            got = model.explain([inputs[i] for i in idx], labels[s:s + batch], drop_unsupported=False)
        except InsufficientData as err:   # a window readable for labels but not for text: skip it
            log.warning("explanation skipped: %s", err)
            continue
        for i, label, (text, bad) in zip(idx, labels[s:s + batch], got):
            n = len(grounding.sentences(text))
            sentences += n
            grounded += n - len({c.sentence for c in bad})
            row = {"window": int(i), "label": label, "truth": model.labels[truth[i]], "text": text,
                   "unsupported": [c.text for c in bad],
                   "names_label": evidence_text.named_label(text, model.labels) == label,
                   "repeated": [c.text for c in bad if c.issue == "repeated"],
                   "contradictory": [c.text for c in bad if c.issue == "contradictory"],
                   "reasons": evidence_text.cited_support(text, measured := _descriptors(inputs[i]), label, model.cues)}
            rows.append(row)
            for key in GRADES[:4]:   # explanations: fully grounded, naming their label, with such a claim
                counts[key] += bool(row[key] if key != "grounded" else not bad)
            counts["says_why"] += bool(row["reasons"])
            counts["reason_available"] += bool(evidence_text.supporting(measured, label, cues=model.cues))
    if not rows:
        return None
    return {"count": len(rows), "sentences": sentences, "grounded_sentences": grounded,
            "grounding_rate": grounded / sentences if sentences else 1.0,
            "fully_grounded": counts["grounded"] / len(rows), **counts, "examples": rows}


def evaluate(args: argparse.Namespace, command: str) -> dict:
    """The results ``main`` writes (``scored`` also returns the per-window outputs)."""
    return scored(args, command)[0]


def scored(args: argparse.Namespace, command: str,
           sel: Selection | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(results, predictions): ``predictions`` holds ``truth`` [N] label indices, ``clip`` [N] clip ids
    and one ``[N, L]`` probability array per scored path, for callers that pool several evaluations.
    ``sel``: windows the caller chose (``train/folds.py``: a fold's sides), instead of ``--data``/``--split``."""
    from bodytalk.model.registry import default_checkpoint, load_model

    path = Path(args.model) if args.model else default_checkpoint()
    wanted = [p for p in args.paths.split(",") if p]
    if unknown := sorted(set(wanted) - set(baselines.PATHS)):
        raise ConfigError(f"--paths: unknown {unknown}; choose from {', '.join(baselines.PATHS)}")
    model = load_model(path, with_llm="llm" in wanted or args.explain > 0)
    sel = select(model.meta, model.labels, args.data, args.split, args) if sel is None else sel
    test, inputs = sel.test, baselines.windows_of(sel.test)
    probs, paths, skipped = {}, {}, {}
    for name in wanted:
        if name in ("llm", "head"):
            if name == "llm" and model.llm is None:
                skipped[name] = ("an encoder-only checkpoint" if model.cfg.llm is None
                                 else "the base LLM is not available (bodytalk models pull)")
                continue
            probs[name], seconds = baselines.timed(baselines.model_probs, model, inputs, name, args.batch)
        elif sel.train_cfg is None or not sel.train_ids:
            skipped[name] = "the checkpoint records no training data to fit it on"
            continue
        else:
            t0 = time.perf_counter()
            train = load(dataclasses.replace(sel.train_cfg, labels=model.labels), progress=False).take(sel.train_ids)
            fitted = baselines.fit(name, train, model.cfg.encoder.features)
            probs[name] = fitted.predict_proba(test)
            seconds = time.perf_counter() - t0
        paths[name] = report.classification(test.label, probs[name], test.clip, model.labels)
        paths[name]["windows_per_s"] = round(len(test) / max(seconds, 1e-9), 2)
    source = probs.get("llm", probs.get("head"))   # the label an explanation explains
    graded = explanations(model, inputs, source, test.label, args.explain) if source is not None else None
    results = {"model": str(path), "data": [d.uri for d in sel.cfg.datasets], "split": sel.name,
               "split_note": sel.note, "labels": list(model.labels), "windows": len(test),
               "clips": len(np.unique(test.clip)), "padded": test.padding(), "paths": paths, "skipped": skipped,
               "explanations": graded,
               "trained_on": {"split": model.meta.get("split_name"), "stages": model.meta.get("stages", [])},
               "command": command}
    clip_ids = np.array([test.clips[i].id for i in test.clip])
    return results, {"truth": test.label, "clip": clip_ids, **probs}


def parser() -> argparse.ArgumentParser:
    """The command line of ``bodytalk eval`` (``train/folds.py`` builds its per-fold arguments with it)."""
    p = argparse.ArgumentParser(prog="bodytalk eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder (default: the demo model)")
    p.add_argument("--data", help="dataset URI (default: the checkpoint's training data)")
    p.add_argument("--split", choices=("auto", "test", "all"), default="auto")
    p.add_argument("--label-key", help="label field of --data (default: the checkpoint's, else emotion)")
    p.add_argument("--classes", help="comma list of --data's labels to keep")
    p.add_argument("--rename", help="comma list of dataset=model label renames, e.g. normal=neutral")
    p.add_argument("--name", help="dataset name (prefix of clip ids)")
    p.add_argument("--out", default="runs/eval", help="report folder (default %(default)s)")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.add_argument("--explain", type=int, default=8, help="explanations to generate and grade (0: none)")
    p.add_argument("--paths", default=",".join(baselines.DEFAULT_PATHS),
                   help=f"label paths among {','.join(baselines.PATHS)} (default %(default)s; cnn trains a "
                        "CNN on the training windows, minutes on a CPU)")
    p.add_argument("--max-windows", type=int, help="evaluate a seeded subset of this many windows")
    p.add_argument("--batch", type=int, default=16, help="windows per model batch")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        if args.data:
            check_uri(args.data)   # before torch and the model load: an endless source is refused at once
    except ValueError as err:
        print(f"bodytalk eval: {err}", file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(args.threads)
    try:
        results = evaluate(args, "bodytalk eval " + shlex.join(argv))
    except (ConfigError, DatasetError, LabelError, SplitError, SourceError, FileNotFoundError, ValueError) as err:
        print(f"bodytalk eval: {err}", file=sys.stderr)
        return 2
    files = report.write(results, Path(args.out))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report.markdown(results))
        print(f"written: {', '.join(str(f) for f in files.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
