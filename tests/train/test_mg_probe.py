"""The MG probe stage end to end on the tiny config (through ``bodytalk train``): STB pre-training,
the head fitted on the training seeds, both detectors scored per MG on a held-out seed; the head
it saves finds a planted MG on the held-out clip where an untrained head does not."""
from __future__ import annotations

import json

import pytest
import torch

from bodytalk.model import checkpoint
from bodytalk.model.skeleton import mg_learned
from bodytalk.model.skeleton.microgestures import NAMES
from bodytalk.train import config, mg_probe, run
from bodytalk.train.config import ConfigError
from bodytalk.train.splits import SplitError

PLANTED = "fold_arms"   # one of the tiny config's MGs, a clear arm posture


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("mg_probe") / "run"
    assert run.main(["--config", "mg_probe_tiny", "--out", str(out)]) == 0
    return config.load(mg_probe.Config, "mg_probe_tiny"), out


@pytest.fixture(scope="module")
def held_out(tiny):
    """The held-out clips, the run's encoder and its tokens over them."""
    cfg, out = tiny
    ck = checkpoint.load(out / "checkpoint")
    clips = mg_probe.read_clips(cfg.clips, cfg.clips.test_seeds)
    return clips, ck.encoder, mg_probe.encode(ck.encoder, clips.windows)


def test_the_run_scores_both_detectors_per_mg_on_held_out_seeds(tiny):
    cfg, out = tiny
    results = json.loads((out / "results.json").read_text())
    assert list(results["per_mg"]) == list(NAMES)
    assert all({"rules", "learned"} <= set(row) for row in results["per_mg"].values())
    split = results["split"]
    assert split["train"] == [f"{cfg.clips.uri_for(s)}#b1" for s in cfg.clips.train_seeds]
    assert split["test"] == [f"{cfg.clips.uri_for(s)}#b1" for s in cfg.clips.test_seeds]
    # The encoder was pre-trained here, on the training seeds only.
    pre = json.loads((out / "pretrain" / "results.json").read_text())
    assert pre["recipe"] == "stb" and set(pre["datasets"]) == {cfg.clips.uri_for(s) for s in cfg.clips.train_seeds}
    planted = results["per_mg"][PLANTED]
    assert planted["planted"] >= 2 and results["data"]["test_windows"] > 20
    table = (out / "mg_table.md").read_text().splitlines()
    assert len(table) == 2 + len(NAMES) + 1 and table[0].startswith("| MG | planted | rules P")
    assert table[1 + NAMES.index(PLANTED) + 1].startswith(f"| {PLANTED} | {planted['planted']} |")


def test_the_saved_head_finds_a_planted_mg_where_an_untrained_head_does_not(tiny, held_out):
    _, out = tiny
    clips, encoder, st = held_out
    detector = mg_learned.load(out / "checkpoint", encoder)
    assert detector is not None and detector.head.cfg.encoder == mg_learned.encoder_digest(encoder)
    trained = mg_probe.score(detector.results(st, clips.windows), clips)[PLANTED]
    # The loaded head reproduces the run's figures, and they are good on a clip it never saw.
    recorded = json.loads((out / "results.json").read_text())["per_mg"][PLANTED]["learned"]
    assert (trained.precision, trained.recall) == (recorded["precision"], recorded["recall"])
    assert trained.recall >= 0.75 and trained.precision >= 0.6, trained
    torch.manual_seed(0)    # (five seeds measured: precision 0-0.19 where it finds the planted MG at all)
    untrained = mg_learned.LearnedDetector(mg_learned.MGHead(mg_learned.HeadConfig(encoder.cfg.dim,
                                                                                   encoder.cfg.time_chunks)))
    chance = mg_probe.score(untrained.results(st, clips.windows), clips)[PLANTED]
    assert not (chance.recall >= 0.75 and chance.precision >= 0.6), chance


def test_config_errors_are_named_before_training(tiny):
    for override, message in (("clips.uri=synthetic:?mg=all&seed=3", "no seed="),
                              ("clips.uri=bvh:x.bvh", "synthetic"),
                              ("clips.test_seeds=[0]", "disjoint"),
                              ("pretrain.optim.lr=-1", "lr > 0"),
                              ("pretrain.encoder.depth=3", "unknown key"),
                              ("probe.cover=0", "cover")):
        with pytest.raises(ConfigError, match=message):
            config.load(mg_probe.Config, "mg_probe_tiny", [override])


def test_an_encoder_that_saw_a_test_seed_is_refused(tiny, tmp_path):
    cfg, out = tiny
    leaky = config.load(mg_probe.Config, "mg_probe_tiny", [f"init={out / 'pretrain' / 'checkpoint'}",
                                                          "clips.train_seeds=[7]", "clips.test_seeds=[0]"])
    with pytest.raises(SplitError, match="trained on test clip"):
        mg_probe.run(leaky, out=tmp_path / "leak")
