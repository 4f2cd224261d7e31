"""Training and evaluation read every frame of their data: a source that never ends (``synthetic:``
without ``duration``, a live sensor) is refused up front, with how to bound it."""
from __future__ import annotations

import pytest

from bodytalk.capture.source import create
from bodytalk.model import registry
from bodytalk.train import evaluate, run
from bodytalk.train.data import DatasetSpec


@pytest.mark.parametrize("uri, hint", [
    ("synthetic:", "synthetic:?duration=60"),
    ("synthetic:?bodies=2&seed=3", "synthetic:?bodies=2&seed=3&duration=60"),
    ("kinect2:", "record a take first"),
    ("osc:", "use session:take.mcap"),
])
def test_eval_refuses_an_endless_source_before_loading_anything(uri, hint, monkeypatch, capsys):
    def no_model(*a, **kw):
        raise AssertionError("the model was loaded for data that never ends")

    monkeypatch.setattr(registry, "load_model", no_model)
    assert evaluate.main(["--data", uri, "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"dataset {uri} never ends" in err and hint in err


def test_train_refuses_an_endless_dataset_in_its_config(tmp_path, capsys):
    assert run.main(["--config", "tiny_pretrain", "--out", str(tmp_path / "run"),
                     "data.datasets.0.uri=synthetic:?bodies=2"]) == 2
    assert "never ends: give it a duration in seconds, e.g. synthetic:?bodies=2&duration=60" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "refused before anything was written"


def test_bounded_sources_are_datasets():
    assert create("synthetic:?duration=5").endless() is None
    assert create("bvh:walk.bvh").endless() is None
    assert DatasetSpec(uri="synthetic:?bodies=2&duration=5").uri.endswith("duration=5")
    with pytest.raises(ValueError, match="never ends"):
        DatasetSpec(uri="synthetic:?bodies=2")
