"""`bodytalk analyze` on files shorter than one window: the padded window's reading is printed
(or, under the minimum real length, the reason it has none); a missing file is named before any
model loads."""
from __future__ import annotations

import json

import pytest

from bodytalk.model.serving import analyze
from tests.capture.test_bvh import CMU_RIG, bvh_text, rest_rows


def _bvh(tmp_path, frames: int):
    path = tmp_path / f"take_{frames}.bvh"
    path.write_text(bvh_text(CMU_RIG, rest_rows(CMU_RIG, frames=frames)))
    return path


def _rows(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_file_shorter_than_the_window_prints_its_padded_reading(tmp_path, capsys):
    assert analyze.main(["--source", f"bvh:{_bvh(tmp_path, 20)}", "--path", "head", "--json"]) == 0
    (row,) = _rows(capsys)
    assert row["padded"] is True and row["real_frames"] == 20
    assert row["status"] == "ok" and row["label"] in row["probs"]
    assert (row["t_start"], row["t_end"]) == (0.0, pytest.approx(19 / 30, abs=1e-3))
    assert analyze.main(["--source", f"bvh:{_bvh(tmp_path, 20)}", "--path", "head"]) == 0
    assert "padded (20 real frames)" in capsys.readouterr().out


def test_a_glimpse_under_the_minimum_is_insufficient_data_with_the_reason(tmp_path, capsys):
    assert analyze.main(["--source", f"bvh:{_bvh(tmp_path, 3)}", "--path", "head", "--json"]) == 0
    (row,) = _rows(capsys)
    assert row["status"] == "insufficient_data" and row["label"] is None
    assert row["real_frames"] == 3 and "needs at least 0.5 s" in row["reason"]


def test_a_missing_file_is_named_before_the_model_loads(tmp_path, monkeypatch, caplog):
    def no_model(*a, **kw):
        raise AssertionError("the model was loaded for a file that does not exist")

    monkeypatch.setattr(analyze, "load_model", no_model)
    assert analyze.main(["--source", f"bvh:{tmp_path / 'nope.bvh'}"]) == 2
    assert "no such file" in caplog.text
