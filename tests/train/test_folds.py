"""The leave-one-group-out sweep (`bodytalk train --folds`): every fold trained and evaluated once,
every clip held out exactly once, resumption without retraining, pooled numbers that are the
recomputation from the per-fold predictions, and the baseline-only mode that trains nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bodytalk.train import config, data, folds, pretrain, report, run
from bodytalk.train.config import ConfigError
from bodytalk.train.fold_summary import METRICS
from bodytalk.train.folds import SweepConfig

# The tiny synthetic data split by body (3 folds); `fearful` is left out because only body 1 shows it.
LOGO = ["data.split.kind=logo", "data.split.group=body", "optim.epochs=1", "optim.warmup_epochs=0",
        "optim.milestones=[]"]
CLASSES = "data.datasets.0.classes=[angry,happy,neutral,sad]"
FOLDS = ("1", "2", "3")


def sweep(out, *extra: str) -> int:
    return run.main(["--config", "tiny_pretrain", "--out", str(out), *extra, *LOGO])


def held_out_clips() -> list[str]:
    """Every clip of the tiny data (with the class subset), as the sweep loads it."""
    _, cfg = run.stage_config(config.load_raw("tiny_pretrain", [CLASSES, *LOGO]), "tiny_pretrain")
    return [c.id for c in data.load(cfg.data, progress=False).clips]


def predictions(out, fold: str) -> dict[str, np.ndarray]:
    with np.load(out / fold / "eval" / "predictions.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Every fold of tiny_pretrain (encoder-only: the llm path is skipped with its reason)."""
    out = tmp_path_factory.mktemp("folds") / "run"
    assert sweep(out, "--folds", "all", CLASSES) == 0
    return out


def test_every_fold_trains_and_every_clip_is_held_out_once(swept):
    summary = json.loads((swept / "summary.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == list(FOLDS) and summary["left_out"] == {}
    for fold in FOLDS:
        assert (swept / fold / "checkpoint" / "config.json").is_file()
        r = json.loads((swept / fold / "eval" / "results.json").read_text())
        assert r["split"] == f"body={fold}" and set(r["paths"]) == {"head", "descriptors"}
        assert r["skipped"] == {"llm": "an encoder-only checkpoint"}
    tested = [c for fold in FOLDS for c in dict.fromkeys(predictions(swept, fold)["clip"].tolist())]
    assert sorted(tested) == sorted(held_out_clips())          # each clip in exactly one fold
    assert summary["windows"] == sum(len(predictions(swept, f)["truth"]) for f in FOLDS)
    assert "| **pooled** (3 folds) |" in (swept / "summary.md").read_text()
    assert (swept / "confusion.png").stat().st_size > 1000      # the pooled confusion, one matrix a path


def test_pooled_numbers_are_the_recomputation_from_per_fold_predictions(swept):
    summary = json.loads((swept / "summary.json").read_text())
    labels = tuple(summary["labels"])
    folds = [predictions(swept, f) for f in FOLDS]
    for path in ("head", "descriptors"):
        _, clip = np.unique(np.concatenate([p["clip"] for p in folds]), return_inverse=True)
        expected = report.classification(np.concatenate([p["truth"] for p in folds]),
                                          np.concatenate([p[path] for p in folds]), clip, labels)
        pooled = summary["pooled"][path]
        assert {k: pooled[k] for k in (*METRICS, "windows", "clips", "confusion")} == \
               {k: expected[k] for k in (*METRICS, "windows", "clips", "confusion")}
        per_fold = [json.loads((swept / f / "eval" / "results.json").read_text())["paths"][path] for f in FOLDS]
        for key in METRICS:
            assert summary["over_folds"][path][key]["mean"] == pytest.approx(np.mean([m[key] for m in per_fold]))
            assert summary["over_folds"][path][key]["std"] == pytest.approx(np.std([m[key] for m in per_fold]))


def test_a_second_call_resumes_without_retraining(swept, monkeypatch, capsys):
    files = [swept / f / name for f in FOLDS for name in ("results.json", "eval/results.json", "eval/predictions.npz")]
    before = [p.stat().st_mtime_ns for p in files]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(pretrain, "run", no_training)
    assert sweep(swept, "--folds", "all", CLASSES) == 0
    assert [p.stat().st_mtime_ns for p in files] == before
    assert capsys.readouterr().out.count("done before") == 3


def test_baseline_only_mode_trains_nothing_and_matches_the_full_sweep(swept, tmp_path, capsys):
    out = tmp_path / "desc"
    assert sweep(out, "--folds", "all", "--paths", "descriptors", CLASSES) == 0
    assert not any((out / f / "checkpoint").exists() for f in FOLDS)
    summary = json.loads((out / "summary.json").read_text())
    full = json.loads((swept / "summary.json").read_text())
    assert set(summary["pooled"]) == {"descriptors"}
    assert summary["pooled"]["descriptors"]["confusion"] == full["pooled"]["descriptors"]["confusion"]
    for fold in FOLDS:   # the same fit as `bodytalk eval` makes on the fold's checkpoint
        assert np.allclose(predictions(out, fold)["descriptors"], predictions(swept, fold)["descriptors"])
    assert capsys.readouterr().out.count("scored") == 3


def test_parallel_folds_give_the_serial_results_and_the_cnn_baseline_is_pooled(swept, tmp_path, capsys):
    """--jobs 2 trains folds in two processes: the same predictions as the serial sweep (seeded
    training, one thread each); baseline (c), the plain CNN, is fitted per fold and pooled too."""
    out = tmp_path / "jobs"
    assert sweep(out, "--folds", "all", "--jobs", "2", "--paths", "head,descriptors,cnn", CLASSES) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["pooled"]) == {"head", "descriptors", "cnn"}
    assert summary["clips"] == len(held_out_clips())
    for fold in FOLDS:
        got, ref = predictions(out, fold), predictions(swept, fold)
        assert np.allclose(got["head"], ref["head"], atol=1e-5)
        assert got["cnn"].shape == got["head"].shape and np.allclose(got["cnn"].sum(1), 1)
    assert "plain temporal CNN" in (out / "summary.md").read_text()


def test_a_fold_that_cannot_train_is_left_out_with_the_reason(tmp_path, capsys):
    out = tmp_path / "all-classes"          # fearful: only body 1 shows it
    assert sweep(out, "--folds", "1,2", "--paths", "descriptors") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["2"]
    assert "fearful appear only on the test side" in summary["left_out"]["1"]
    assert "left out" in capsys.readouterr().out


def test_auxiliary_classes_train_a_fold_and_leave_its_held_out_side_as_it_was(swept, tmp_path):
    """fearful as an auxiliary class: fold 2 trains on body 1's fearful clips too, and holds out and
    scores exactly the clips (and labels) the sweep without it does."""
    from bodytalk.model import checkpoint

    out = tmp_path / "aux"
    assert sweep(out, "--folds", "2", "--paths", "head", CLASSES, "data.datasets.0.auxiliary=[fearful]") == 0
    meta = checkpoint.load(out / "2" / "checkpoint").meta
    plain = checkpoint.load(swept / "2" / "checkpoint").meta["split"]
    assert meta["auxiliary_labels"] == ["fearful"] and meta["split"]["test"] == plain["test"]
    assert set(meta["split"]["train"]) > set(plain["train"])     # + body 1's fearful clips
    got, want = predictions(out, "2"), predictions(swept, "2")
    assert got["clip"].tolist() == want["clip"].tolist() and (got["truth"] == want["truth"]).all()
    assert got["head"].shape == want["head"].shape      # [N, 4]: the kept labels only


def test_a_stale_fold_folder_is_refused(swept, tmp_path, capsys):
    out = tmp_path / "stale"
    shutil.copytree(swept / "1", out / "2", ignore=shutil.ignore_patterns("eval"))   # fold 1's run under 2
    assert sweep(out, "--folds", "2", "--paths", "head", CLASSES) == 2
    assert "was not trained on fold body=2" in capsys.readouterr().err


def test_a_pipeline_holds_the_same_fold_out_in_every_stage():
    cfg = SweepConfig("tiny_all", ("shared.data.split.kind=logo", "shared.data.split.group=body"))
    _, pipeline = folds.stage_config(cfg, "2")          # "2" stays a string (not YAML text -> int)
    stages = [stage for _, stage, _ in pipeline.plan(Path(pipeline.out))]
    assert [(s.data.split.kind, s.data.split.group, s.data.split.fold) for s in stages] == [("logo", "body", "2")] * 3


def test_parallel_folds_share_the_cores_instead_of_oversubscribing_them():
    """--jobs N x runtime.threads above the machine's cores: each fold gets its share (at least one),
    in every stage of a pipeline, a stage's own runtime section included."""
    assert folds.fold_threads(2, 1, 2) == 2 and folds.fold_threads(2, 2, 8) == 2   # fits: the config's
    assert folds.fold_threads(2, 2, 2) == 1 and folds.fold_threads(4, 3, 8) == 2
    assert folds.fold_threads(1, 4, 2) == 1                                          # never below one
    cfg = SweepConfig("tiny_all", ("shared.data.split.kind=logo", "shared.data.split.group=body",
                                   "shared.runtime.threads=2", "stages.2.runtime.threads=3"))
    threads = {}
    for cap in (None, 1):
        _, pipeline = folds.stage_config(cfg, "2", cap)
        threads[cap] = [stage.runtime.threads for _, stage, _ in pipeline.plan(Path(pipeline.out))]
    assert threads == {None: [2, 2, 3], 1: [1, 1, 1]}


def test_bad_sweeps_stop_with_a_message(tmp_path, capsys):
    assert run.main(["--config", "tiny_pretrain", "--folds", "all", "--out", str(tmp_path)]) == 2
    assert "leave-one-group-out split" in capsys.readouterr().err
    assert sweep(tmp_path, "--folds", "7", "--paths", "descriptors") == 2
    assert "not a value of 'body'; values: 1, 2, 3" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="choose from llm, head, descriptors"):
        SweepConfig("tiny_pretrain", paths=("lstm",))
    with pytest.raises(ConfigError, match="--jobs must be >= 1"):
        SweepConfig("tiny_pretrain", jobs=0)
    with pytest.raises(SystemExit):
        run.main(["--config", "tiny_pretrain", "--paths", "descriptors"])
    assert "--paths, --jobs, --explain and --choose go with --folds" in capsys.readouterr().err
    assert SweepConfig.from_cli("tiny_all", [], "all", "llm", None, 1, 5).explain == 5
    with pytest.raises(SystemExit):
        run.main(["--config", "tiny_pretrain", "--folds", "all", "--explain", "-1"])
    assert "--explain >= 0" in capsys.readouterr().err
