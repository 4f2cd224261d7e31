"""The learned micro-gesture head: shapes, spans from chunk scores, the shared observability rule,
save / load round trip, and the guard against a head trained on another encoder. (Training and the
per-MG precision / recall on held-out clips: tests/train/test_mg_probe.py.)"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bodytalk.capture.layouts import BODY_PARTS, U
from bodytalk.model.skeleton import mg_learned
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.skeleton.features import WindowInput, prepare
from bodytalk.model.skeleton.microgestures import NAMES
from tests.model.motions import still

FPS, K, D = 30.0, 5, 16
P, M = len(BODY_PARTS), len(NAMES)
WRISTS = [U["l_wrist"], U["r_wrist"]]
HANDS = {"fold_arms", "hands_on_hips", "touch_face", "cover_face", "touch_head", "touch_neck", "rub_hands",
         "cross_hands"}   # every alternative needs a wrist (fidget can still be seen in an ankle)
HEAD = {"touch_face", "cover_face", "touch_head", "touch_neck"}


@pytest.fixture(scope="module")
def encoder() -> SkeletonEncoder:
    torch.manual_seed(0)
    return SkeletonEncoder(EncoderConfig(dim=D, time_chunks=K)).eval()


def head_for(encoder: SkeletonEncoder, **cfg) -> mg_learned.MGHead:
    torch.manual_seed(1)
    return mg_learned.MGHead(mg_learned.HeadConfig(D, K, encoder=mg_learned.encoder_digest(encoder), **cfg)).eval()


def window(T: int = 60, seed: int = 0) -> WindowInput:
    rng = np.random.default_rng(seed)
    return WindowInput(still(T) + rng.normal(0, 0.01, (T, 17, 3)), np.ones((T, 17)), FPS)


def test_head_shapes_and_wrong_tokens(encoder):
    head = head_for(encoder, hidden=8)
    st = torch.randn(3, P * K, D)
    w, c = head(st)
    assert w.shape == (3, M) and c.shape == (3, K, M)
    pooled, chunks = head.inputs(st)
    assert pooled.shape == (3, (P + K) * D) and chunks.shape == (3, K, P * D)
    # Chunk k of the part-major tokens (token p*K + k): part p's token sits at [p*D:(p+1)*D].
    assert torch.equal(chunks[1, 2, D:2 * D], st[1, 1 * K + 2])
    with pytest.raises(ValueError, match="another encoder config"):
        head(torch.randn(3, P * 2, D))
    with pytest.raises(ValueError, match="one threshold"):
        mg_learned.HeadConfig(D, K, window_threshold=(0.5,))


def test_spans_come_from_the_chunk_scores_and_presence_from_the_window_score(encoder):
    det = mg_learned.LearnedDetector(head_for(encoder))
    w = window()
    p_window, p_chunk = np.full(M, 0.1), np.full((K, M), 0.1)
    s, t = NAMES.index("shrug"), NAMES.index("touch_face")
    p_window[[s, t]] = 0.9
    p_chunk[2, s] = 0.8                 # shrug in chunk 2 only
    p_chunk[:, t] = 0.3                 # touch_face: no chunk passes, its best one (0) stands in
    p_chunk[0, t] = 0.4
    p_chunk[:, NAMES.index("sway")] = 0.9   # chunks say sway but the window does not: absent
    r = det.decide(p_window, p_chunk, w)
    [shrug] = r.events("shrug")
    assert (shrug.t_start, shrug.t_end) == (24 / FPS, 35 / FPS)      # frames 24-35 of 60: chunk 2
    assert shrug.confidence == pytest.approx(0.9 * min(1.0, 12 / FPS / 0.5))
    [touch] = r.events("touch_face")
    assert (touch.t_start, touch.t_end) == (0.0, 11 / FPS)
    assert r.status("sway") == "absent" and set(r.absent) == set(NAMES) - {"shrug", "touch_face"}


def test_results_from_encoder_outputs_equal_detect(encoder):
    det = mg_learned.LearnedDetector(head_for(encoder), encoder)
    ws = [window(seed=i) for i in range(3)] + [window(T=45, seed=9)]    # any window length
    x = torch.from_numpy(np.stack([prepare(w, 60) for w in ws]))
    with torch.no_grad():
        st = encoder(x, encoder.layout_ids([w.layout for w in ws]))["st_tokens"]
    # a batch of four and one window at a time round differently (1e-7 on some CPUs): the same events,
    # with the same confidences to float precision
    for batched, alone in zip(det.results(st, ws), [det.detect(w.joints, w.confidence, w.fps) for w in ws]):
        assert (batched.absent, batched.not_observable) == (alone.absent, alone.not_observable)
        assert [dataclasses.replace(m, confidence=0.0) for m in batched.present] == \
            [dataclasses.replace(m, confidence=0.0) for m in alone.present]
        assert [m.confidence for m in batched.present] == pytest.approx([m.confidence for m in alone.present], abs=1e-5)
    assert det.detect(np.full((60, 17, 3), np.nan), np.ones((60, 17)), FPS).not_observable == NAMES
    with pytest.raises(ValueError, match="no encoder"):
        mg_learned.LearnedDetector(head_for(encoder)).detect(ws[0].joints, ws[0].confidence, FPS)


@pytest.mark.parametrize("hidden, value, expected", [
    (WRISTS, 0.0, HANDS), ([U["head"]], 0.0, HEAD), ([U["head"]], 0.3, HEAD)])
def test_missing_hands_or_head_are_not_observable_even_when_the_head_fires(encoder, hidden, value, expected):
    head = head_for(encoder)
    for layer in (head.window, head.chunk):      # a head that says "present" for every MG
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.constant_(layer.bias, 5.0)
    det = mg_learned.LearnedDetector(head, encoder)
    w = window()
    conf = w.confidence.copy()
    conf[:, hidden] = value
    r = det.detect(w.joints, conf, FPS)
    assert set(r.not_observable) == expected
    assert {m.name for m in r.present} == set(NAMES) - expected
    assert r.absent == ()
    full = det.detect(w.joints, w.confidence, FPS)
    assert {m.name for m in full.present} == set(NAMES)


def test_save_load_round_trip_gives_identical_outputs(encoder, tmp_path):
    head = head_for(encoder, hidden=4)
    st = torch.randn(6, P * K, D)
    head.normalise(*head.inputs(torch.randn(20, P * K, D) * 3 + 1))
    head.cfg = dataclasses.replace(head.cfg, window_threshold=tuple(np.linspace(0.2, 0.8, M)),
                                   chunk_threshold=(0.35,) * M, meta={"run": "x"})
    mg_learned.save(tmp_path, head)
    assert (tmp_path / "mg_head.safetensors").is_file() and (tmp_path / "mg_head.json").is_file()
    loaded = mg_learned.load(tmp_path, encoder)
    assert loaded.head.cfg == head.cfg and loaded.head.cfg.meta == {"run": "x"}
    with torch.no_grad():
        for a, b in zip(head(st), loaded.head(st)):
            assert torch.equal(a, b)
    ws = [window(seed=i) for i in range(6)]
    assert loaded.results(st, ws) == mg_learned.LearnedDetector(head).results(st, ws)
    assert mg_learned.load(tmp_path / "none", encoder) is None


def test_a_head_is_refused_on_other_encoder_weights_but_not_after_label_head_training(encoder, tmp_path):
    mg_learned.save(tmp_path, head_for(encoder))
    relabelled = SkeletonEncoder(encoder.cfg)
    relabelled.load_state_dict(encoder.state_dict())
    torch.nn.init.normal_(relabelled.head.weight)                 # the label head does not reach st_tokens
    assert mg_learned.load(tmp_path, relabelled) is not None
    torch.manual_seed(5)
    with pytest.raises(ValueError, match="another encoder.*mg_probe"):
        mg_learned.load(tmp_path, SkeletonEncoder(encoder.cfg))
    with pytest.raises(ValueError, match="retrain"):
        mg_learned.LearnedDetector(head_for(encoder), SkeletonEncoder(EncoderConfig(dim=D, time_chunks=2)))


def test_a_checkpoint_with_a_head_reads_mgs_from_the_same_encoder_pass(tmp_path):
    from bodytalk.model.checkpoint import ModelConfig
    from bodytalk.model.inference import EmotionModel

    model = EmotionModel.untrained(ModelConfig.create(encoder={"dim": D, "time_chunks": K}, with_llm=False))
    model.save(tmp_path)
    assert EmotionModel.load(tmp_path).mg_detector is None          # no head: the geometric rules
    head = head_for(model.encoder)
    for layer in (head.window, head.chunk):                          # a head that says "present" for every MG
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.constant_(layer.bias, 5.0)
    mg_learned.save(tmp_path, head)
    loaded = EmotionModel.load(tmp_path)
    assert loaded.mg_detector is not None
    w = window()
    conf = w.confidence.copy()
    conf[:, WRISTS] = 0.0
    (r,) = loaded.recognise([WindowInput(w.joints, conf, FPS)], path="head")
    assert {m.name for m in r.mgs.present} == set(NAMES) - HANDS and set(r.mgs.not_observable) == HANDS
