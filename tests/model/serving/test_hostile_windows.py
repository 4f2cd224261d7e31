"""Windows and work items that pass the wire's validation but no person could make: the server and
worker answer each with an ``insufficient_data`` event (or a counted refusal) and keep serving."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bodytalk.model.serving.server import ServeConfig, Server
from bodytalk.model.serving.tokenize import Tokenizer
from bodytalk.model.skeleton import descriptors
from bodytalk.model.skeleton.features import WindowInput
from bodytalk.stream import schema
from tests.capture.test_bvh import CMU_RIG, bvh_text, rest_rows, write
from tests.helpers import Collect
from tests.model.serving.helpers import ListIntake, source_windows, synthetic_windows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def good():
    return synthetic_windows(bodies=1, seconds=3.0)


def _serve(model, msgs):
    pub = Collect()
    server = Server(ServeConfig(explain=False, path="head"), model, pub, ListIntake(msgs))
    for _ in range(len(msgs) + 1):
        server.step(0)
    return server, pub.of(schema.EmotionEvent)


def test_a_bvh_with_a_huge_root_coordinate_gives_insufficient_data(model, tmp_path):
    rows = [list(r) for r in rest_rows(CMU_RIG, frames=150)]
    for i, r in enumerate(rows):
        r[0] = i * 0.5           # a slow walk sideways, in centimetres
    rows[80][0] = 1e30           # one frame, finite but absurd
    windows = source_windows(f"bvh:{write(tmp_path, bvh_text(CMU_RIG, rows))}")
    hit = [w for w in windows if w.t_start <= 80 / 30 <= w.t_end]
    assert hit and len(hit) < len(windows)
    server, events = _serve(model, windows)
    by_seq = {e.window_seq: e for e in events}
    assert len(by_seq) == len(windows)
    for w in hit:
        assert by_seq[w.seq].status == "insufficient_data" and "implausible coordinate" in by_seq[w.seq].reason
    assert all(by_seq[w.seq].status == "ok" for w in windows if w not in hit)
    assert not any(k.startswith("error_") for k in server.counts)


@pytest.mark.parametrize("change, why", [
    (dict(fps=1e30), "implausible frame rate"),
    (dict(fps=0.01), "implausible frame rate"),
    ("huge", "implausible coordinate"),
    ("fast", "implausible movement"),
    ("long", "outside the limits"),
])
def test_absurd_windows_are_refused_with_a_reason(model, good, change, why):
    w = good[0]
    if change == "huge":
        j = w.joints.copy()
        j[10, 0] = 1e30
        change = dict(joints=j)
    elif change == "fast":   # 30 m/s sideways: within +-100 m, but nobody moves like that
        j = w.joints.copy() + (np.arange(len(w.joints)) * 1.0 - 30)[:, None, None] * np.array([1.0, 0, 0])
        change = dict(joints=j.astype(np.float32))
    elif change == "long":
        t = 9000
        change = dict(joints=np.resize(w.joints, (t, *w.joints.shape[1:])),
                      confidence=np.resize(w.confidence, (t, w.confidence.shape[1])),
                      interpolated=np.zeros(t, bool))
    bad = dataclasses.replace(w, **change)
    server, events = _serve(model, [bad, good[1]])
    assert [e.status for e in events] == ["insufficient_data", "ok"]
    assert why in events[0].reason


def test_analyze_never_labels_an_implausible_window_ok(model, good):
    w = good[0]
    fast = w.joints + (np.arange(len(w.joints)) * 1.0)[:, None, None] * np.array([1.0, 0, 0])
    reading, = model.recognise([WindowInput(fast.astype(np.float32), w.confidence, w.fps)], path="head")
    assert reading.status == "insufficient_data" and "implausible movement" in reading.reason
    d = descriptors.compute(fast, w.confidence, w.fps)
    assert d["speed"].value > descriptors.MAX_MEAN_SPEED


def _work(model, good, **mgs_entry):
    item, = Tokenizer(model).tokenize([(good[0], 0.0)])
    return dataclasses.replace(item, mgs={"present": [mgs_entry], "absent": [], "not_observable": []})


@pytest.mark.parametrize("entry", [
    dict(name="head_nod", t_end=1.0, confidence=0.9, count=1),                  # no t_start
    dict(name="head_nod", t_start="x", t_end=1.0, confidence=0.9, count=1),     # not a number
    dict(name="no_such_gesture", t_start=0.0, t_end=1.0, confidence=0.9, count=1),
])
def test_malformed_work_items_are_refused_and_counted(model, good, entry):
    bad = schema.decode(schema.encode(_work(model, good, **entry)))[0]
    fine, = Tokenizer(model).tokenize([(good[1], 0.0)])
    server, events = _serve(model, [bad, fine])
    assert [e.window_seq for e in events] == [good[1].seq]
    assert server.refused["content"] == 1


def test_work_with_unknown_evidence_names_is_refused(model, good):
    item, = Tokenizer(model).tokenize([(good[0], 0.0)])
    bad = dataclasses.replace(item, evidence={**item.evidence, "mind_control": 1.0})
    server, events = _serve(model, [bad])
    assert events == [] and server.refused["content"] == 1


def test_an_error_past_every_check_is_counted_and_the_server_goes_on(model, good, monkeypatch):
    server, _ = _serve(model, [])
    calls = {"n": 0}
    real = model.label_probs

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OverflowError("boom")
        return real(*a, **kw)

    monkeypatch.setattr(model, "label_probs", flaky)
    server.intake = ListIntake([good[0]])
    server.step(0)
    server.intake = ListIntake([good[1]])
    server.step(0)
    assert server.counts["error_OverflowError"] == 1 and server.counts["events"] == 1


def test_per_body_state_is_bounded(model, good, monkeypatch):
    from bodytalk.model.serving import server as server_module
    monkeypatch.setattr(server_module, "MAX_BODIES", 3)
    items = [dataclasses.replace(w, body=str(100 + i)) for i, w in enumerate(Tokenizer(model).tokenize(
        [(good[0], 0.0)] * 5))]
    server, events = _serve(model, items)
    assert len(events) == 5 and len(server.stable) == 3 and len(server.last_seq) == 3
    assert server.counts["forgotten_bodies"] == 2 and list(server.stable)[-1] == ("synthetic", "104")


def test_a_forged_window_seq_does_not_overflow_the_status_counters(model, good):
    """Found by benchmarks/fuzz.py: a window seq near 2**64 after seq 0 made lost_windows too large
    for a status message, and the heartbeat killed the server."""
    far = dataclasses.replace(good[1], seq=2**64 - 1)
    server, events = _serve(model, [good[0], far])
    assert len(events) == 2 and server.counts["lost_windows"] == 0 and server.counts["seq_jumps"] == 1
    pub = Collect()
    server.heartbeat.pub = pub
    server.beat(1.0)
    assert pub.of(schema.Status)[0].counters["seq_jumps"] == 1
