"""Settings chosen on each fold's training side (`bodytalk train --folds ... --choose`): the inner
split never sees the fold, each fold's choice is the best inner score, the chosen setting's outer run
is the plain sweep's (reused, not retrained), and the pooled figures are the chosen folds' own."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bodytalk.train import config, data, fold_summary, nested, pretrain, report, run, splits
from bodytalk.train.config import ConfigError
from bodytalk.train.folds import SweepConfig
from bodytalk.train.nested import Candidate, NestedConfig
from bodytalk.train.splits import SplitConfig, SplitError

# four synthetic bodies as the groups: every fold keeps two bodies to train an inner run on
DATA = ["data.split.kind=logo", "data.split.group=body", "optim.epochs=1", "optim.warmup_epochs=0",
        "optim.milestones=[]", "data.datasets.0.uri=synthetic:?bodies=4&duration=40&hold=10&seed=1"]
FOLDS = ("1", "2")
CHOOSE = ["--choose", "a:", "--choose", "b:optim.lr=0.001"]


def windows():
    _, cfg = run.stage_config(config.load_raw("tiny_pretrain", DATA), "tiny_pretrain")
    return data.load(cfg.data, progress=False)


def body(clip_id: str, clips) -> str:
    return next(c.groups["body"] for c in clips if c.id == clip_id)


@pytest.fixture(scope="module")
def chosen(tmp_path_factory):
    """A plain sweep of candidate `a` in OUT/a first (reused), then the nested run."""
    out = tmp_path_factory.mktemp("nested") / "run"
    assert run.main(["--config", "tiny_pretrain", "--out", str(out / "a"), "--folds", ",".join(FOLDS),
                     "--paths", "head", *DATA]) == 0
    assert run.main(["--config", "tiny_pretrain", "--out", str(out), "--folds", ",".join(FOLDS), "--inner", "1",
                     *CHOOSE, *DATA]) == 0
    return out, json.loads((out / "nested.json").read_text())


def test_the_inner_split_tests_the_validation_values_and_never_sees_the_fold():
    clips = windows().clips
    split = splits.inner(clips, "body", "1", ("2", "3"))
    assert {body(c, clips) for c in split.test} == {"2", "3"}
    assert {body(c, clips) for c in split.train} == {"4"}
    assert split.name == "body=2+3"
    selected = splits.select(clips, SplitConfig(kind="logo", group="body", fold="1", validation=("2", "3")))
    assert selected == split
    with pytest.raises(ValueError, match="split.validation goes with kind=logo"):
        SplitConfig(kind="logo", group="body", fold="1", validation=("1",))
    with pytest.raises(ValueError, match="split.validation goes with kind=logo"):
        SplitConfig(kind="clip", validation=("2",))
    with pytest.raises(SplitError, match="9 not a value of 'body'"):
        splits.inner(clips, "body", "1", ("9",))


def test_validation_values_are_seeded_per_fold_and_keep_every_tested_label_trained(tmp_path):
    from bodytalk.train import folds

    f = folds.prepare(SweepConfig("tiny_pretrain", tuple(DATA), out=str(tmp_path)), log=lambda _: None)
    for fold in ("1", "2", "3", "4"):
        values = nested.validation_values(f, fold, 1, seed=0)
        assert fold not in values and values == nested.validation_values(f, fold, 1, seed=0)
        split = splits.inner(f.windows.clips, "body", fold, values)
        splits.check(split, f.windows.clips, f.windows.counts())     # raises if a tested label is untrained
    assert len({nested.validation_values(f, "3", 1, seed=s) for s in range(8)}) > 1   # the draw moves with the seed
    with pytest.raises(SplitError, match="lower --inner"):    # 3 of the 3 others: nothing left to train on
        nested.validation_values(f, "1", 3, seed=0)


def test_each_fold_chooses_its_best_inner_score_and_the_inner_run_never_trained_on_the_fold(chosen):
    from bodytalk.model import checkpoint

    out, s = chosen
    n = s["nested"]
    assert set(n["choice"]) == set(FOLDS) and n["path"] == "head"
    clips = windows().clips
    for fold in FOLDS:
        scores = n["inner_scores"][fold]
        best = max(scores.values(), key=lambda m: (m["clip_macro_f1"], m["macro_f1"]))
        first_best = next(c for c in ("a", "b") if (scores[c]["clip_macro_f1"], scores[c]["macro_f1"])
                          == (best["clip_macro_f1"], best["macro_f1"]))
        assert n["choice"][fold] == first_best
        for candidate in ("a", "b"):
            folder = out / "inner" / candidate / fold / "+".join(n["validation"][fold])   # another draw: another folder
            split = checkpoint.load(folder / "checkpoint").meta["split"]
            assert {body(c, clips) for c in split["test"]} == set(n["validation"][fold])
            assert fold not in {body(c, clips) for c in split["train"]} | set(n["validation"][fold])
        assert (out / n["choice"][fold] / fold / "eval" / "predictions.npz").is_file()


def test_the_pooled_figures_are_the_chosen_folds_own_and_a_full_candidate_is_pooled_beside_them(chosen):
    out, s = chosen
    n = s["nested"]
    preds = []
    for fold in FOLDS:
        with np.load(out / n["choice"][fold] / fold / "eval" / "predictions.npz") as z:
            preds.append({k: z[k] for k in z.files})
    _, clip = np.unique(np.concatenate([p["clip"] for p in preds]), return_inverse=True)
    expected = report.classification(np.concatenate([p["truth"] for p in preds]),
                                      np.concatenate([p["head"] for p in preds]), clip, tuple(s["labels"]))
    assert {k: s["pooled"]["head"][k] for k in fold_summary.METRICS} == {k: expected[k] for k in fold_summary.METRICS}
    plain = json.loads((out / "a" / "summary.json").read_text())["pooled"]["head"]
    assert n["always"]["a"] == {k: plain[k] for k in fold_summary.METRICS}    # the sweep copied there
    text = (out / "nested.md").read_text()
    assert "| chosen on each fold's training side |" in text and "| always a |" in text


def test_a_second_call_trains_nothing(chosen, monkeypatch, capsys):
    out, before = chosen

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(pretrain, "run", no_training)
    assert run.main(["--config", "tiny_pretrain", "--out", str(out), "--folds", ",".join(FOLDS), "--inner", "1",
                     *CHOOSE, *DATA]) == 0
    assert capsys.readouterr().out.count("done before") == 2 * len(FOLDS) + len(FOLDS)
    assert json.loads((out / "nested.json").read_text())["nested"]["choice"] == before["nested"]["choice"]


def test_the_inner_seed_reaches_the_draw(tmp_path, monkeypatch):
    seen = []

    def record(cfg, command, log=print):
        seen.append(cfg.seed)
        return tmp_path

    monkeypatch.setattr(nested, "run", record)
    assert run.main(["--config", "tiny_pretrain", "--folds", "1", "--inner-seed", "3", *CHOOSE, *DATA]) == 0
    assert seen == [3]


def test_bad_choices_stop_with_a_message(tmp_path, capsys):
    sweep = SweepConfig("tiny_pretrain", paths=("head",))
    assert Candidate.parse("hop:data.hop=0.5 optim.epochs=3") == Candidate("hop", ("data.hop=0.5", "optim.epochs=3"))
    assert Candidate.parse("plain:") == Candidate("plain", ())
    for text in ("no-colon", "bad name:x=1", "inner:", "x:optim.epochs"):
        with pytest.raises(ConfigError, match="--choose"):
            Candidate.parse(text)
    with pytest.raises(ConfigError, match="two or more unless --shift"):
        NestedConfig(sweep, (Candidate("a", ()),))
    with pytest.raises(ConfigError, match="two or more unless --shift"):
        NestedConfig(sweep, (Candidate("a", ()),), shift=(1.0,))
    with pytest.raises(ConfigError, match="--shift moves the head's label"):
        NestedConfig(SweepConfig("tiny_pretrain", paths=("llm", "head")), (Candidate("a", ()),), shift=(0.0, 1.0))
    with pytest.raises(ConfigError, match="distinct names"):
        NestedConfig(sweep, (Candidate("a", ()), Candidate("a", ("optim.lr=1",))))
    with pytest.raises(ConfigError, match="--inner must be >= 1"):
        NestedConfig(sweep, (Candidate("a", ()), Candidate("b", ())), inner=0)
    with pytest.raises(ConfigError, match="--paths needs llm or head"):
        NestedConfig(SweepConfig("tiny_pretrain", paths=("descriptors",)), (Candidate("a", ()), Candidate("b", ())))
    with pytest.raises(SystemExit):
        run.main(["--config", "tiny_pretrain", *CHOOSE])
    assert "--choose go with --folds" in capsys.readouterr().err
    for args, message in ((["--shift", "0,1"], "--shift goes with --choose"),
                          (["--choose", "a:", "--shift", "0,-1"], "--shift '0,-1'")):
        with pytest.raises(SystemExit):
            run.main(["--config", "tiny_pretrain", "--folds", "1", *args, *DATA])
        assert message in capsys.readouterr().err
    assert run.main(["--config", "tiny_pretrain", "--out", str(tmp_path), "--folds", "1", "--inner", "3",
                     *CHOOSE, *DATA]) == 2
    assert "no fold can choose" in (err := capsys.readouterr().err) and "lower --inner" in err


def test_a_label_shift_is_chosen_on_the_inner_runs_and_applied_without_training_again(chosen, tmp_path, monkeypatch):
    from bodytalk.model import checkpoint
    from bodytalk.train import label_shift

    out = tmp_path / "copy"
    shutil.copytree(chosen[0], out)     # the fixture's runs: every inner and outer run of `a` is there

    def no_training(*args, **kwargs):
        raise AssertionError("a label shift needs no training")

    monkeypatch.setattr(pretrain, "run", no_training)
    assert run.main(["--config", "tiny_pretrain", "--out", str(out), "--folds", ",".join(FOLDS), "--inner", "1",
                     "--choose", "a:", "--shift", "0,2", *DATA]) == 0
    s = json.loads((out / "nested.json").read_text())
    n, clips, labels = s["nested"], windows().clips, tuple(s["labels"])
    assert n["shift"] == [0, 2]

    def shift(folder, tau):
        """The run's predictions with the bias of its own checkpoint's training clips."""
        train = checkpoint.load(folder / "checkpoint").meta["split"]["train"]
        cover = label_shift.coverage([c for c in clips if c.id in set(train)], labels, "body")
        with np.load(folder / "eval" / "predictions.npz") as z:
            p = {k: z[k] for k in z.files}
        biases.append(label_shift.bias(cover, tau))
        return p | {"head": label_shift.shifted(p["head"], biases[-1])}

    def score(p):
        return report.classification(p["truth"], p["head"], np.unique(p["clip"], return_inverse=True)[1], labels)

    outer, biases = [], []
    for fold in FOLDS:
        inner = out / "inner" / "a" / fold / "+".join(n["validation"][fold])
        for tau in (0, 2):
            assert n["inner_scores"][fold][f"a@{tau}"]["clip_macro_f1"] == score(shift(inner, tau))["clip_macro_f1"]
        best = max(("a@0", "a@2"), key=lambda k: (n["inner_scores"][fold][k]["clip_macro_f1"],   # noqa: B023
                                                   n["inner_scores"][fold][k]["macro_f1"], k == "a@0"))
        assert n["choice"][fold] == best
        outer.append(shift(out / "a" / fold, float(best.partition("@")[2])))
    _, clip = np.unique(np.concatenate([p["clip"] for p in outer]), return_inverse=True)
    expected = report.classification(np.concatenate([p["truth"] for p in outer]),
                                      np.concatenate([p["head"] for p in outer]), clip, labels)
    assert s["pooled"]["head"]["clip_macro_f1"] == expected["clip_macro_f1"]
    assert s["pooled"]["head"]["macro_f1"] == expected["macro_f1"]
    assert any(b.any() for b in biases)     # the bodies show the labels unevenly: some shift moved something
    assert set(n["always"]) == {"a@0", "a@2"} and "| always a@2 |" in (out / "nested.md").read_text()
