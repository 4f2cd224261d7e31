"""Leave-one-group-out sweep: train and evaluate every fold of a ``logo`` split, then pool them.

    bodytalk train --config bandai --folds all --out runs/bandai-folds        # every content value
    bodytalk train --config bandai --folds walk,run --out runs/bandai-folds   # some folds (the rest later)
    bodytalk train --config bandai --folds all --paths descriptors           # baseline (a) only: no training

The folds are the values of the split's group field found in the data (``content`` in the Bandai
sidecars). Each fold runs the config with ``data.split.fold=<value>`` (a pipeline's
``shared.data.split.fold``) into ``OUT/<value>/``, then scores its checkpoint's model paths
(``llm``, ``head``) as ``bodytalk eval --model OUT/<value>/checkpoint --out OUT/<value>/eval`` does.
Baseline (a), descriptors + logistic regression, is fitted here on the fold's training windows (the
fit ``bodytalk eval`` makes, also for checkpoints that record no training data), so
``--paths descriptors`` trains nothing and sweeps every Bandai fold in minutes on a CPU.
``OUT/<value>/eval/`` holds eval's files plus ``predictions.npz`` (per window: truth, clip id, the
probabilities of each path). Resuming: a fold whose evaluation covers the asked paths is skipped,
a finished training is not rerun, and an interrupted stage resumes as ``bodytalk train`` does; run
the same command again. A fold that cannot train (a class only on its held-out side) is reported
and left out.

``OUT/summary.json`` and ``OUT/summary.md`` (train/fold_summary.py): per fold and pooled (every held-out window of every
fold in one set; each clip is held out exactly once) window accuracy / macro-F1 and clip accuracy /
macro-F1 of each label path, with the mean and std (ddof 0) over folds, and how many held-out
clips and windows were padded (clips shorter than the window count, with one reflected window).
``OUT/confusion.png``: the pooled windows' row-normalised confusion matrix of each path.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bodytalk.train import baselines, config as config_io, data, evaluate, fold_summary, report, splits
from bodytalk.train.config import ConfigError
from bodytalk.train.data import DataConfig
from bodytalk.train.windowset import WindowSet
from bodytalk.train.evaluate import Selection
from bodytalk.train.splits import Split, SplitError

MODEL_PATHS = ("llm", "head")          # paths that need a trained checkpoint


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    config: str                               # the training config each fold runs (file or committed name)
    overrides: tuple[str, ...] = ()           # its dotted key=value overrides
    folds: tuple[str, ...] | None = None      # held-out values to run (None: every value in the data)
    paths: tuple[str, ...] = baselines.DEFAULT_PATHS  # label paths to score per fold
    out: str | None = None                    # default: the config's `out` + "-folds"
    explain: int = 12                         # explanations graded per fold (with the llm path)
    jobs: int = 1                             # folds run at once, one process each
    threads: int | None = None                # every stage's runtime.threads (None: the config's)

    def __post_init__(self) -> None:
        if not self.paths or (unknown := sorted(set(self.paths) - set(baselines.PATHS))):
            raise ConfigError(f"--paths: {', '.join(unknown) or 'none given'}? choose from {', '.join(baselines.PATHS)}")
        if self.folds is not None and not self.folds:
            raise ConfigError("--folds is empty: give 'all' or comma-separated held-out values")
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")

    @classmethod
    def from_cli(cls, config: str, overrides: list[str], folds: str, paths: str | None,
                 out: str | None, jobs: int = 1, explain: int | None = None) -> "SweepConfig":
        """From ``bodytalk train --config C --folds all|V1,V2 [--paths P1,P2] [--out DIR] [--jobs N]
        [--explain N] [key=value ...]``."""
        return cls(config, tuple(overrides), None if folds == "all" else tuple(v for v in folds.split(",") if v),
                   tuple(paths.split(",")) if paths else baselines.DEFAULT_PATHS, out,
                   cls.explain if explain is None else explain, jobs)

    @property
    def model_paths(self) -> list[str]:
        return [p for p in self.paths if p in MODEL_PATHS]


def stage_config(cfg: SweepConfig, fold: str | None, threads: int | None = None,
                 validation: tuple[str, ...] = ()):
    """(stage module, validated config) of the training config, holding out ``fold`` when given (or
    training for its inner ``validation`` values) and training every stage on ``threads`` when given.
    They are set in the parsed mapping, not as override text (a fold value such as ``1`` stays a string)."""
    from bodytalk.train import run   # imported late: run imports this module

    raw = config_io.load_raw(cfg.config, cfg.overrides)
    pipeline = raw.get("stage") == "pipeline"
    section = raw.setdefault("shared", {}) if pipeline else raw
    if fold is not None:
        split = section.setdefault("data", {}).setdefault("split", {})
        split["fold"] = fold
        if validation:
            split["validation"] = list(validation)
    if threads is not None:   # shared < item: a stage's own runtime section is capped too
        for part in [section] + [s for s in raw.get("stages", []) if pipeline and isinstance(s, dict)]:
            part.setdefault("runtime", {})["threads"] = threads
    return run.stage_config(raw, cfg.config)


def fold_threads(threads: int, jobs: int, cores: int) -> int:
    """Threads a fold trains and scores on: the config's, unless ``jobs`` folds at once would ask
    for more threads than the machine has cores. Then each fold gets its share (at least one):
    torch's threads spin while they wait, so oversubscribed folds each run many times slower."""
    return threads if jobs * threads <= cores else max(1, cores // jobs)


def _stages(stage_cfg) -> list:
    """A pipeline's stage configs in order (the first is where the data and the split are read), else
    the config alone."""
    plan = getattr(stage_cfg, "plan", None)
    return [stage for _, stage, _ in plan(Path(stage_cfg.out))] if plan else [stage_cfg]


def _threads(stage_cfg) -> int:
    return getattr(getattr(stage_cfg, "runtime", None), "threads", 1)


@dataclasses.dataclass
class Folds:
    """What a sweep runs: the data, its outer folds, and the threads each fold trains on."""
    cfg: SweepConfig               # with ``threads`` set when the cores are shared out
    data_cfg: DataConfig
    windows: WindowSet
    by_value: dict[str, Split]     # held-out value -> its fold
    runnable: list[str]            # the asked folds that can train
    left_out: dict[str, str]       # the asked folds that cannot, with the reason
    threads: int                   # the first stage's threads (what a fold's evaluation uses)
    base_out: str                  # the config's own `out` (the default OUT is derived from it)


def prepare(cfg: SweepConfig, log: Callable[[str], None] = print) -> Folds:
    """Read the config's data and its logo split; check the asked folds and share out the cores."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:   # every rank would evaluate and write the same files
        raise ConfigError("--folds runs in one process: start it without torchrun")
    _, base = stage_config(cfg, None)
    stages = _stages(base)
    first = stages[0]
    data_cfg: DataConfig | None = getattr(first, "data", None)
    if data_cfg is None or data_cfg.split.kind != "logo":
        raise ConfigError(f"--folds needs a leave-one-group-out split: {cfg.config} has "
                          f"{'no data section' if data_cfg is None else 'data.split.kind=' + data_cfg.split.kind}; "
                          "set data.split.kind=logo and data.split.group")
    windows = data.load(data_cfg)
    by_value = {s.held_out: s for s in splits.make(windows.clips, data_cfg.split)}
    wanted = cfg.folds or tuple(by_value)
    if unknown := [v for v in wanted if v not in by_value]:
        raise SplitError(f"--folds: {', '.join(unknown)} not a value of {data_cfg.split.group!r}; "
                         f"values: {', '.join(by_value)}")
    threads, asked, cores = _threads(first), max(map(_threads, stages)), len(os.sched_getaffinity(0))
    if (share := fold_threads(asked, cfg.jobs, cores)) != asked:
        log(f"--jobs {cfg.jobs} x {asked} threads is more than the {cores} cores here: each fold trains and "
            f"scores on {share} (runtime.threads)")
        threads, cfg = min(threads, share), dataclasses.replace(cfg, threads=share)
    left_out, runnable = {}, []
    for value in wanted:
        try:
            splits.check(by_value[value], windows.clips, windows.counts())
            runnable.append(value)
        except SplitError as err:
            left_out[value] = str(err)
            log(f"{by_value[value].name}: left out: {err}")
    return Folds(cfg, data_cfg, windows, by_value, runnable, left_out, threads, base.out)


def sweep(cfg: SweepConfig, command: str = "", log: Callable[[str], None] = print) -> Path:
    """Run (or resume) every asked fold, then write OUT/summary.json, OUT/summary.md and OUT/confusion.png."""
    f = prepare(cfg, log)
    out = Path(cfg.out or f"{f.base_out}-folds")
    done = {}
    args = [(f.cfg, f.by_value[v], f.windows, f.data_cfg, out / v, f.threads) for v in f.runnable]
    with pool(cfg.jobs) as workers:
        for i, (value, (result, how, took)) in enumerate(zip(f.runnable, workers.map(timed_fold, args)), 1):
            done[value] = result
            log(f"[{i}/{len(f.runnable)}] {f.by_value[value].name}: {how} in {took:.0f} s; "
                f"{result[0]['windows']} windows; window acc " + ", ".join(
                    f"{p} {m['accuracy']:.3f}" for p, m in result[0]["paths"].items()))
    fold_summary.write(fold_summary.summarise(done, f.left_out, f.data_cfg, f.cfg, command), out)
    return out


class _Serial:
    """``--jobs 1``: folds in this process, in order (the pool's ``map`` without a pool)."""
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    @staticmethod
    def map(fn, items):
        return map(fn, items)


def pool(jobs: int):
    """Folds at once: worker processes (spawned: torch's threads do not survive a fork), each
    fold's training and evaluation in one of them; results come back in fold order."""
    if jobs == 1:
        return _Serial()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))


def timed_fold(args: tuple) -> tuple[tuple[dict, dict[str, np.ndarray]], str, float]:
    t0 = time.perf_counter()
    result, how = run_fold(*args)
    return result, how, time.perf_counter() - t0


def run_fold(cfg: SweepConfig, split: Split, windows: WindowSet, data_cfg: DataConfig, folder: Path,
             threads: int, inner: tuple[str, tuple[str, ...]] | None = None
             ) -> tuple[tuple[dict, dict[str, np.ndarray]], str]:
    """((eval results, predictions), what was done) for one fold, resumed where it stopped.
    ``inner``: (fold, its validation values) when ``split`` is that fold's inner validation."""
    ev = folder / "eval"
    if (found := load_done(ev, cfg.paths)) is not None:
        return found, "done before"
    train, test = windows.split(split)
    if cfg.model_paths:
        how = "evaluated" if _trained(folder) else "trained and evaluated"
        sel = Selection(data_cfg, test, split.name, f"held-out side of fold {split.name}", data_cfg, split.train)
        results, preds = _evaluate_checkpoint(cfg, _train(cfg, split, folder, inner), sel, ev, threads)
    else:
        how, scores = "scored", {}
        preds = {"truth": test.label, "clip": np.array([test.clips[i].id for i in test.clip])}
        features = dict(getattr(_stages(stage_config(cfg, None)[1])[0], "encoder", {})).get("features", 1)
        if "cnn" in cfg.paths:   # the CNN trains here: the config's threads, as a fold's training would
            import torch
            torch.set_num_threads(threads)
        for name in cfg.paths:   # only fitted baselines here: no model path was asked
            preds[name], seconds = baselines.timed(
                lambda: baselines.fit(name, train, features).predict_proba(test))  # noqa: B023
            scores[name] = report.classification(test.label, preds[name], test.clip, windows.labels)
            scores[name]["windows_per_s"] = round(len(test) / max(seconds, 1e-9), 2)
        results = {"model": None, "data": [d.uri for d in data_cfg.datasets], "split": split.name,
                   "split_note": f"held-out side of fold {split.name}; fitted baselines only, no model trained",
                   "labels": list(windows.labels), "windows": len(test), "clips": len(np.unique(test.clip)),
                   "padded": test.padding(), "paths": scores, "skipped": {}, "explanations": None,
                   "trained_on": None,
                   "command": ""}
    report.write(results, ev)
    np.savez(ev / "predictions.npz", **preds)   # written last: its presence marks the fold done
    return (results, preds), how


def load_done(ev: Path, paths: tuple[str, ...]) -> tuple[dict, dict[str, np.ndarray]] | None:
    """A finished fold evaluation that scored (or skipped, with the reason) every asked path."""
    if not (ev / "predictions.npz").is_file() or not (ev / "results.json").is_file():
        return None
    results = json.loads((ev / "results.json").read_text())
    if not set(paths) <= set(results["paths"]) | set(results["skipped"]):
        return None
    with np.load(ev / "predictions.npz") as z:
        return results, {k: z[k] for k in z.files}


def _trained(folder: Path) -> bool:
    return (folder / "results.json").is_file() and (folder / "checkpoint" / "config.json").is_file()


def _train(cfg: SweepConfig, split: Split, folder: Path, inner: tuple[str, tuple[str, ...]] | None = None) -> Path:
    """The fold's checkpoint, trained now unless a finished run is there (checked to hold this fold out)."""
    from bodytalk.model import checkpoint

    if not _trained(folder):
        fold, validation = inner or (split.held_out, ())
        module, stage_cfg = stage_config(cfg, fold, cfg.threads, validation)
        module.run(stage_cfg, out=folder)
    recorded = checkpoint.load(folder / "checkpoint").meta.get("split")
    if recorded is None or Split.from_dict(recorded).test != split.test:
        raise SplitError(f"{folder / 'checkpoint'} was not trained on fold {split.name} of this data (it held "
                         f"out other clips): remove {folder} and run again")
    return folder / "checkpoint"


def _evaluate_checkpoint(cfg: SweepConfig, ckpt: Path, sel: Selection, ev: Path,
                         threads: int) -> tuple[dict, dict[str, np.ndarray]]:
    """``bodytalk eval --model CKPT --out EV`` on the fold's held-out windows (baseline a fitted on its
    training windows, also for encoder-only checkpoints, which record no data config)."""
    import torch

    argv = ["--model", str(ckpt), "--out", str(ev), "--paths", ",".join(cfg.paths),
            "--explain", str(cfg.explain if "llm" in cfg.paths else 0), "--threads", str(threads)]
    torch.set_num_threads(threads)
    return evaluate.scored(evaluate.parser().parse_args(argv), "bodytalk eval " + shlex.join(argv), sel)
