"""Settings chosen on each fold's training side (inner validation), then scored on the held-out fold.

    bodytalk train --config bandai_head --folds all --paths head --jobs 2 --out runs/nested \\
        --choose committed: --choose "hop50:data.train_hop=0.5 optim.epochs=30" --inner 2

A fold sweep scores one setting. Comparing settings by their pooled held-out figures and keeping the
best chooses on the held-out folds, and the figure of the kept one is then optimistic. Here each
outer fold ``f`` chooses for itself, without its own clips:

1. ``--inner K`` values of ``f``'s training side are held out together as validation values, drawn
   (seeded by ``f``) among the values whose clips show the most labels; ``f`` is on neither side;
2. every candidate trains on the rest and is scored on them (``OUT/inner/<candidate>/<f>/<values>/``:
   another ``--inner`` or ``--inner-seed`` draws other values and trains anew);
3. the candidate with the best inner clip macro-F1 of the first model path, then window macro-F1,
   then the order given, is ``f``'s choice;
4. the choice trains on ``f``'s whole training side and is scored on ``f``
   (``OUT/<candidate>/<f>/``, the folder a plain sweep with ``--out OUT/<candidate>`` uses: a
   finished sweep copied there is reused, not trained again).

``--shift 0,1,2,3``: the label shift (``train/label_shift.py``) is chosen with the candidate, as
``NAME@tau``. A shift needs no training: each tau is scored on the inner runs' saved predictions with
the bias of that run's own training clips, and the fold's choice is applied to its outer run's
predictions, as a checkpoint trained with ``pretrain.label_shift`` would give them.

``OUT/nested.md`` / ``nested.json``: per fold its validation values, each candidate's inner figures
and the choice; pooled, the chosen settings' held-out figures beside each candidate's own where its
sweep has every fold. Everything resumes as a fold sweep does: run the same command again.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from bodytalk.train import fold_summary, folds, label_shift, report, splits
from bodytalk.train.config import ConfigError
from bodytalk.train.folds import Folds, SweepConfig
from bodytalk.train.splits import SplitError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str                       # its folder under OUT
    overrides: tuple[str, ...]      # key=value on top of the sweep's own

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        """``NAME:key=value key=value`` (``NAME:`` alone: the config as it is)."""
        name, sep, rest = text.partition(":")
        if not sep or not NAME.fullmatch(name) or name == "inner":
            raise ConfigError(f"--choose {text!r}: write NAME:key=value ... (NAME: letters, digits, '_', '.', '-'; "
                              "'NAME:' alone for the config as it is)")
        try:
            overrides = tuple(shlex.split(rest))
        except ValueError as err:
            raise ConfigError(f"--choose {text!r}: {err}") from None
        if bad := [o for o in overrides if "=" not in o]:
            raise ConfigError(f"--choose {text!r}: {', '.join(bad)} is not key=value")
        return cls(name, overrides)


@dataclasses.dataclass(frozen=True)
class NestedConfig:
    sweep: SweepConfig              # the config, its overrides, folds, paths, jobs and OUT
    candidates: tuple[Candidate, ...]
    inner: int = 2                  # validation values held out together in each fold's inner run
    seed: int = 0                   # which values
    shift: tuple[float, ...] = ()   # label-shift taus to choose among as well (train/label_shift.py)

    def __post_init__(self) -> None:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names) or len(names) * max(1, len(self.shift)) < 2:
            raise ConfigError(f"--choose: give candidates with distinct names, two or more unless --shift gives "
                              f"two or more taus; got {', '.join(names) or 'none'}")
        if self.inner < 1:
            raise ConfigError(f"--inner must be >= 1, got {self.inner}")
        if not self.sweep.model_paths:
            raise ConfigError("--choose compares trained settings: --paths needs llm or head")
        if self.shift and self.path != "head":
            raise ConfigError("--shift moves the head's label: --paths must start with head")

    @property
    def path(self) -> str:
        """The label path the choice is made on."""
        return self.sweep.model_paths[0]

    def of(self, candidate: Candidate) -> SweepConfig:
        return dataclasses.replace(self.sweep, overrides=self.sweep.overrides + candidate.overrides)

    def options(self) -> list[tuple[str, float]]:
        """(candidate, tau) pairs in order of preference on a tie."""
        return [(c.name, t) for c in self.candidates for t in (self.shift or (0.0,))]

    def key(self, name: str, tau: float) -> str:
        return f"{name}@{tau:g}" if self.shift else name


def validation_values(f: Folds, fold: str, k: int, seed: int) -> tuple[str, ...]:
    """``k`` values of ``fold``'s training side to validate on: a seeded draw among the values whose
    clips show the most labels, each kept only if the inner split still trains every label it tests."""
    group = f.data_cfg.split.group
    counts = f.windows.counts()
    labels: dict[str, set[str]] = {}
    for clip in f.windows.clips:
        if counts.get(clip.id, 0) and clip.groups[group] != fold:
            labels.setdefault(clip.groups[group], set()).add(clip.label)
    rank = dict(zip(sorted(labels), np.random.default_rng([seed, zlib.crc32(fold.encode())]).permutation(len(labels))))
    order = sorted(labels, key=lambda v: (-len(labels[v]), rank[v]))
    chosen: list[str] = []
    for value in order:
        try:
            splits.check(splits.inner(f.windows.clips, group, fold, (*chosen, value)), f.windows.clips, counts)
        except SplitError:
            continue
        chosen.append(value)
        if len(chosen) == k:
            return tuple(chosen)
    raise SplitError(f"fold {fold}: no {k} value(s) of {group!r} on its training side can be held out for "
                     f"validation and leave every label they show in training (found {len(chosen)}); lower --inner")


def _key(metrics: dict) -> tuple[float, float]:
    return metrics["clip_macro_f1"], metrics["macro_f1"]


def run(cfg: NestedConfig, command: str = "", log: Callable[[str], None] = print) -> Path:
    """Inner runs for every fold and candidate, the choices, their outer runs; OUT/nested.md and .json."""
    f = folds.prepare(cfg.sweep, log)
    out = Path(cfg.sweep.out or f"{f.base_out}-nested")
    shared = dataclasses.replace(cfg, sweep=f.cfg)    # f.cfg: the threads shared out
    group = f.data_cfg.split.group
    validation = {}
    for v in list(f.runnable):
        try:
            validation[v] = validation_values(f, v, cfg.inner, cfg.seed)
        except SplitError as err:   # like a fold that cannot train: reported and left out
            f.runnable.remove(v)
            f.left_out[v] = str(err)
            log(f"{f.by_value[v].name}: left out: {err}")
    if not f.runnable:
        raise SplitError("no fold can choose: " + "; ".join(f.left_out.values()))
    jobs = [(v, c) for v in f.runnable for c in cfg.candidates]
    inner_split = {v: splits.inner(f.windows.clips, group, v, validation[v]) for v in f.runnable}
    args = [(shared.of(c), inner_split[v], f.windows, f.data_cfg, out / "inner" / c.name / v / "+".join(validation[v]),
             f.threads, (v, validation[v])) for v, c in jobs]
    inner: dict[str, dict[str, dict]] = {v: {} for v in f.runnable}
    with folds.pool(cfg.sweep.jobs) as workers:
        for i, ((v, c), (result, how, took)) in enumerate(zip(jobs, workers.map(folds.timed_fold, args)), 1):
            cover = _coverage(f, inner_split[v], result)
            for tau in cfg.shift or (0.0,):
                results = shifted(result, cover, cfg.path, tau)[0]
                inner[v][cfg.key(c.name, tau)] = {k: results["paths"][cfg.path][k] for k in fold_summary.METRICS}
            log(f"[inner {i}/{len(jobs)}] {c.name}, fold {v}, validating on {'+'.join(validation[v])}: {how} in "
                f"{took:.0f} s; clip macro-F1 " + ", ".join(f"{k} {m['clip_macro_f1']:.3f}" for k, m in inner[v].items()
                                                            if k.partition("@")[0] == c.name))
        order = {cfg.key(*o): i for i, o in enumerate(cfg.options())}
        best = {v: max(cfg.options(), key=lambda o, v=v: (*_key(inner[v][cfg.key(*o)]), -order[cfg.key(*o)]))
                for v in f.runnable}
        choice, taus = {v: best[v][0] for v in f.runnable}, {v: best[v][1] for v in f.runnable}
        byname = {c.name: c for c in cfg.candidates}
        args = [(shared.of(byname[choice[v]]), f.by_value[v], f.windows, f.data_cfg, out / choice[v] / v, f.threads)
                for v in f.runnable]
        chosen = {}
        for i, (v, (result, how, took)) in enumerate(zip(f.runnable, workers.map(folds.timed_fold, args)), 1):
            chosen[v] = shifted(result, _coverage(f, f.by_value[v], result), cfg.path, taus[v])
            log(f"[outer {i}/{len(f.runnable)}] fold {v}: {cfg.key(choice[v], taus[v])}, {how} in {took:.0f} s")
    summary = fold_summary.summarise(chosen, f.left_out, f.data_cfg, f.cfg, command)
    summary["nested"] = {"path": cfg.path, "inner": cfg.inner, "seed": cfg.seed,
                         "candidates": {c.name: list(c.overrides) for c in cfg.candidates},
                         "validation": {v: list(validation[v]) for v in f.runnable}, "inner_scores": inner,
                         "choice": {v: cfg.key(choice[v], taus[v]) for v in f.runnable}, "shift": list(cfg.shift),
                         "always": _always(cfg, f, out)}
    fold_summary.write(summary, out, "nested", markdown(summary) + "\n" + fold_summary.markdown(summary))
    return out


def _coverage(f: Folds, split: splits.Split, result: tuple[dict, dict]) -> np.ndarray:
    """``[L]`` the coverage of the result's labels by ``split``'s training side (``label_shift.coverage``)."""
    train = set(split.train)
    return label_shift.coverage([c for c in f.windows.clips if c.id in train], result[0]["labels"],
                                f.data_cfg.split.group, "--shift")


def shifted(result: tuple[dict, dict], cover: np.ndarray, path: str, tau: float) -> tuple[dict, dict]:
    """A fold's (results, predictions) with the label shift ``tau`` on ``path``, its bias from the
    training side's coverage ``[L]``, as a checkpoint trained with ``pretrain.label_shift`` holds it."""
    if not tau:
        return result
    results, preds = result
    probs = label_shift.shifted(preds[path], label_shift.bias(cover, tau))
    scores = report.classification(preds["truth"], probs, np.unique(preds["clip"], return_inverse=True)[1],
                                   tuple(results["labels"]))
    return ({**results, "paths": {**results["paths"], path: scores | {"label_shift": tau}}}, {**preds, path: probs})


def _always(cfg: NestedConfig, f: Folds, out: Path) -> dict[str, dict | None]:
    """Each option's own pooled held-out figures where its candidate's sweep has every fold (else None)."""
    pooled = {}
    for name, tau in cfg.options():
        done = {v: folds.load_done(out / name / v / "eval", (cfg.path,)) for v in f.runnable}
        if any(d is None for d in done.values()):
            pooled[cfg.key(name, tau)] = None
            continue
        done = {v: shifted(d, _coverage(f, f.by_value[v], d), cfg.path, tau) for v, d in done.items()}
        summary = fold_summary.summarise(done, {}, f.data_cfg, dataclasses.replace(f.cfg, paths=(cfg.path,)), "")
        pooled[cfg.key(name, tau)] = {k: summary["pooled"][cfg.path][k] for k in fold_summary.METRICS}
    return pooled


def markdown(s: dict) -> str:
    """The choices, fold by fold, and the pooled comparison."""
    n = s["nested"]
    names = list(next(iter(n["inner_scores"].values()), {}))   # candidate, or candidate@tau with --shift
    what = "; ".join(f"**{c}** (`{' '.join(o)}`)" if o else f"**{c}** (the config as it is)"
                     for c, o in n["candidates"].items())
    taus = [f"- label shift (`train/label_shift.py`): tau chosen among {', '.join(f'{t:g}' for t in n['shift'])} "
            "with the candidate (`NAME@tau`, ties to the smaller), its bias from each side's own training clips"
            ] if n.get("shift") else []
    lines = [f"# Settings chosen on each fold's training side: `{s['config']}`, {len(n['choice'])} fold(s)", "",
             f"- candidates: {what}", *taus,
             f"- inner validation: {n['inner']} value(s) of each fold's training side held out together (seed "
             f"{n['seed']}), the fold itself on neither side; the choice: best inner clip macro-F1 of the "
             f"`{n['path']}` path, then window macro-F1, then the order above", "",
             f"| held out ({s['group']}) | validated on | " + " | ".join(names)
             + " | chosen | held-out clip acc |", "|---|---|" + "---|" * len(names) + "---|---|"]
    held = {f["fold"]: f["paths"][n["path"]]["clip_accuracy"] for f in s["folds"]}
    for v, choice in n["choice"].items():
        cells = [f"{n['inner_scores'][v][c]['clip_macro_f1']:.3f} / {n['inner_scores'][v][c]['macro_f1']:.3f}"
                 for c in names]
        lines.append(f"| {v} | {', '.join(n['validation'][v])} | " + " | ".join(cells)
                     + f" | {choice} | {held[v]:.3f} |")
    lines += ["", "Inner cells: clip macro-F1 / window macro-F1 on the validation values.", "",
              "| setting, pooled over the folds | window acc | window macro-F1 | clip acc | clip macro-F1 |",
              "|---|---|---|---|---|"]
    rows = {"chosen on each fold's training side": s["pooled"][n["path"]]}
    rows |= {f"always {c}": m for c, m in n["always"].items() if m is not None}
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in fold_summary.METRICS) + " |"
              for name, m in rows.items()]
    if missing := [c for c, m in n["always"].items() if m is None]:
        lines.append(f"\nNot pooled (their sweeps lack folds they were not chosen on): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"
