"""Every clip counts: a clip shorter than the window gives one padded window in training data, in
``bodytalk eval``'s results and in the fold sweep's summary; a glimpse too short to read is named."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bodytalk.train import run
from bodytalk.train.config import parse
from bodytalk.train.data import DataConfig, load
from bodytalk.train.views import WindowDataset
from tests.train.test_datasets import write_bandai_like

FULL, SHORT, GLIMPSE = 76, 20, 3  # frames: two windows; one padded window; too short to read
# "Frame Time: 0.0333333" runs a hair faster than the 30 fps grid, so the grid holds one point less
# than the file has frames (the last frame falls 1e-6 s before the last grid point).
GRID = -1


@pytest.fixture
def short_clips(tmp_path) -> Path:
    """Bandai-style folder: 2 contents x 3 styles; content 1 / style 2 lasts 20 frames, and one
    extra take (content 0 / style 0) only 3."""
    takes = {f"take_{c}_{s}": (c, s, SHORT if (c, s) == (1, 2) else FULL) for c in range(2) for s in range(3)}
    return write_bandai_like(tmp_path / "ds", {**takes, "glimpse_0_0": (0, 0, GLIMPSE)})


def _config(tmp_path: Path, data: Path) -> DataConfig:
    return parse(DataConfig, {"datasets": [{"uri": f"bvh:{data}", "label_key": "style", "name": "ds"}],
                              "cache": str(tmp_path / "cache")})


def test_a_short_clip_trains_on_one_padded_window(tmp_path, short_clips, caplog):
    with caplog.at_level(logging.WARNING, "bodytalk.data"):
        ws = load(_config(tmp_path, short_clips), progress=False)
    short = [i for i, c in enumerate(ws.clips) if c.id == "ds/take_1_2.bvh"]
    assert len(short) == 1, "the short clip is a clip"
    rows = np.flatnonzero(ws.clip == short[0])
    assert len(rows) == 1 and ws.padded[rows[0]] and ws.real_frames[rows[0]] == SHORT + GRID
    assert ws.joints[rows[0]].shape == (60, 17, 3)
    assert ws.padding() == {"windows": 1, "clips": 1} and ws.summary()["padded"] == ws.padding()
    assert ws.real_frames[~ws.padded].tolist() == [60] * int((~ws.padded).sum())
    # a 3-frame take is no clip, but it is named with the reason, never dropped in silence
    assert not any("glimpse" in c.id for c in ws.clips)
    assert "ds/glimpse_0_0.bvh: body 0: only 2 frames (0.07 s) of real motion" in caplog.text
    # training reads the padded window like any other
    x, _, label = WindowDataset(ws, ("bvh-cmu",), frames=30, version=1)[int(rows[0])]
    assert tuple(x.shape)[:2] == (30, 17) and int(label) == ws.label[rows[0]]
    # the cache keeps the padding
    again = load(_config(tmp_path, short_clips), progress=False)
    assert np.array_equal(again.real_frames, ws.real_frames)


def test_the_sweep_and_eval_results_count_padded_clips(tmp_path, short_clips):
    out = tmp_path / "sweep"
    assert run.main(["--config", "tiny_pretrain", "--out", str(out), "--folds", "all", "--paths", "descriptors",
                     f"data.datasets.0.uri=bvh:{short_clips}", "data.datasets.0.label_key=style",
                     "data.split.kind=logo", "data.split.group=content", f"data.cache={tmp_path / 'cache'}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == 6, "every clip counted, the short one too"
    assert summary["padded"] == {"clips": 1, "windows": 1}
    per_fold = {f["fold"]: f["padded"] for f in summary["folds"]}
    assert per_fold == {"walk": {"clips": 0, "windows": 0}, "bow": {"clips": 1, "windows": 1}}
    assert json.loads((out / "bow" / "eval" / "results.json").read_text())["padded"] == {"clips": 1, "windows": 1}
    assert "padded (clips shorter than the window, one reflected window each): 1 clip(s), 1 window(s)" \
        in (out / "summary.md").read_text()
    assert "1 clip(s), 1 window(s)" in (out / "bow" / "eval" / "report.md").read_text()
