import numpy as np
import pytest
import torch

from bodytalk.capture.layouts import U
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.skeleton.features import CHANNELS, InsufficientData, WindowInput, prepare
from bodytalk.model.projector import Projector, ProjectorConfig


def _standing(t=60, yaw=0.0, shift=(0.0, 0.0, 0.0), seed=0):
    """A body facing +z (rotated by ``yaw``) with small random motion; [T, 17, 3]."""
    rng = np.random.default_rng(seed)
    base = np.zeros((17, 3))
    base[:, 1] = np.linspace(0.9, 1.7, 17)
    for name, x in (("l_hip", 0.1), ("l_shoulder", 0.2), ("l_elbow", 0.25), ("l_wrist", 0.3),
                    ("l_knee", 0.1), ("l_ankle", 0.1)):
        base[U[name], 0] = x
        base[U[name.replace("l_", "r_")], 0] = -x
    j = base + 0.02 * rng.standard_normal((t, 17, 3)).cumsum(0)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return (j @ rot.T + np.array(shift)).astype(np.float32)


def test_prepare_shape_and_channels():
    w = WindowInput(_standing(), np.ones((60, 17), np.float32))
    x = prepare(w)
    assert x.shape == (60, 17, CHANNELS) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, U["pelvis"], :3], 0, atol=1e-6)  # root-relative
    np.testing.assert_allclose(x[:, :, 9], 1.0)                        # confidence channel


def test_prepare_is_invariant_to_facing_and_position():
    conf = np.ones((60, 17), np.float32)
    a = prepare(WindowInput(_standing(), conf))
    b = prepare(WindowInput(_standing(yaw=1.1, shift=(3.0, 0.5, -2.0)), conf))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_prepare_resamples_other_lengths():
    w = WindowInput(_standing(t=120), np.ones((120, 17), np.float32), fps=60)
    assert prepare(w).shape == (60, 17, CHANNELS)


@pytest.mark.parametrize("joints,conf,reason", [
    (np.zeros((60, 25, 3), np.float32), np.ones((60, 25), np.float32), "unified"),
    (np.full((60, 17, 3), np.nan, np.float32), np.ones((60, 17), np.float32), "frames"),
    (_standing(), np.zeros((60, 17), np.float32), "frames"),
    (_standing(), np.ones((60, 16), np.float32), "confidence"),
])
def test_bad_windows_are_insufficient_data(joints, conf, reason):
    with pytest.raises(InsufficientData, match=reason):
        prepare(WindowInput(joints, conf))


def test_encoder_and_projector_shapes():
    cfg = EncoderConfig()
    enc = SkeletonEncoder(cfg).eval()
    proj = Projector(ProjectorConfig(in_dim=cfg.dim, out_dim=48, hidden=32))
    x = torch.randn(3, cfg.frames, 17, CHANNELS)
    out = enc(x, enc.layout_ids(["kinect_v2", "bvh-bandai", "never-seen"]))
    assert out["st_tokens"].shape == (3, 6 * cfg.time_chunks, cfg.dim)
    assert out["sem_tokens"].shape == (3, cfg.semantic_tokens, cfg.dim)
    assert out["logits"].shape == (3, cfg.num_labels)
    tokens = proj(out)
    assert tokens.shape == (3, cfg.semantic_tokens + cfg.num_st_tokens, 48)


def test_evidence_tokens_sit_between_semantic_and_spatio_temporal_tokens():
    cfg = EncoderConfig()
    enc = SkeletonEncoder(cfg).eval()
    plain = Projector(ProjectorConfig(in_dim=cfg.dim, out_dim=48, hidden=32))
    proj = Projector(ProjectorConfig(in_dim=cfg.dim, out_dim=48, hidden=32, evidence_tokens=3))
    proj.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        out = enc(torch.randn(2, cfg.frames, 17, CHANNELS), enc.layout_ids(["kinect_v2"] * 2))
        ev = torch.randn(2, proj.cfg.evidence_dim)
        tokens, without = proj(out, ev), plain(out)                  # [2, Q + 3 + P*K, 48], [2, Q + P*K, 48]
        moved = proj(out, ev + 1.0)
    q = cfg.semantic_tokens
    assert tokens.shape == (2, q + 3 + cfg.num_st_tokens, 48)
    torch.testing.assert_close(tokens[:, :q], without[:, :q])          # the skeleton tokens are unchanged
    torch.testing.assert_close(tokens[:, q + 3:], without[:, q:])
    assert not torch.allclose(moved[:, q:q + 3], tokens[:, q:q + 3])   # the evidence tokens read the features
    torch.testing.assert_close(moved[:, :q], tokens[:, :q])
    with pytest.raises(ValueError, match="evidence="):
        proj(out)


def test_head_evidence_gives_the_evidence_tokens_what_the_head_concluded():
    """With ``head_evidence`` the evidence tokens read the head's label probabilities after the
    descriptor features; a checkpoint config states the wider input, and one without evidence
    tokens cannot ask for it."""
    from bodytalk.model.checkpoint import ModelConfig
    from bodytalk.model.projector import evidence_dim

    cfg = EncoderConfig(num_labels=4)
    proj = Projector(ProjectorConfig(in_dim=cfg.dim, out_dim=48, hidden=32, evidence_tokens=2,
                                     evidence_dim=evidence_dim(False, 4), head_evidence=True)).eval()
    enc = SkeletonEncoder(cfg).eval()
    with torch.no_grad():
        out = enc(torch.randn(2, cfg.frames, 17, CHANNELS), enc.layout_ids(["kinect_v2"] * 2))
        ev = torch.randn(2, evidence_dim(False))
        tokens = proj(out, ev)
        sure = proj({**out, "logits": torch.tensor([[9.0, 0, 0, 0], [0, 0, 0, 9.0]])}, ev)
    q = cfg.semantic_tokens
    assert not torch.allclose(sure[:, q:q + 2], tokens[:, q:q + 2])
    torch.testing.assert_close(sure[:, :q], tokens[:, :q])
    made = ModelConfig.create(("a", "b", "c", "d"), hidden=48, projector={"evidence_tokens": 2, "head_evidence": True})
    assert made.projector.evidence_dim == evidence_dim(False) + 4
    with pytest.raises(ValueError, match="evidence_tokens > 0"):
        ProjectorConfig(head_evidence=True)


def test_layout_embedding_changes_the_tokens():
    enc = SkeletonEncoder(EncoderConfig()).eval()
    x = torch.randn(1, 60, 17, CHANNELS).repeat(2, 1, 1, 1)
    with torch.no_grad():
        out = enc(x, enc.layout_ids(["kinect_v2", "bvh-bandai"]))
    assert not torch.allclose(out["sem_tokens"][0], out["sem_tokens"][1])
    assert enc.layout_ids(["no-such-layout"]).item() == 0


@pytest.mark.parametrize("kw", [dict(frames=61), dict(time_chunks=3), dict(num_labels=1), dict(dim=30)])
def test_encoder_config_validation(kw):
    with pytest.raises(ValueError):
        EncoderConfig(**kw)


def test_wrong_frame_count_rejected():
    enc = SkeletonEncoder(EncoderConfig())
    with pytest.raises(ValueError, match="frames"):
        enc(torch.randn(1, 30, 17, CHANNELS), torch.zeros(1, dtype=torch.long))


def test_evidence_features_keep_not_observable_apart_from_absent():
    from bodytalk.model.skeleton import descriptors as D, microgestures as mg
    from bodytalk.model.projector import evidence_dim, evidence_features

    d = D.compute(_standing(), np.ones((60, 17), np.float32), 30.0)
    names = mg.NAMES
    result = mg.MGResult(present=(mg.MG(names[0], 0.2, 0.8, 0.9, 1),), absent=names[1:3], not_observable=names[3:])
    f = evidence_features(d, result)
    n, k = D.FEATURE_DIM, len(names)
    assert f.shape == (evidence_dim(True),) == (n + 2 * k,)
    conf, seen = f[n:n + k], f[n + k:]
    assert conf[0] == pytest.approx(0.9) and not conf[1:].any()
    assert seen[:3].tolist() == [1.0, 1.0, 1.0] and not seen[3:].any()
    np.testing.assert_array_equal(evidence_features(d), f[:n])       # without MG cues: descriptors only
