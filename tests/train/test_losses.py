"""Contrastive losses: known inputs -> known values, and the STB fusion's arithmetic."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bodytalk.train.losses import STBLoss, clip_loss, cross_stream, info_nce, nt_xent, streams


def test_nt_xent_of_identical_orthogonal_pairs():
    # Each of the 8 embeddings: its partner at cosine 1 (logit 1/t), 6 others at cosine 0.
    z = torch.eye(4)
    t = 0.5
    assert float(nt_xent(z, z.clone(), t)) == pytest.approx(math.log(1 + 6 * math.exp(-1 / t)), rel=1e-6)


def test_nt_xent_ignores_scale_and_is_zero_without_negatives():
    z1, z2 = torch.randn(5, 8), torch.randn(5, 8)
    assert float(nt_xent(3 * z1, 0.5 * z2)) == pytest.approx(float(nt_xent(z1, z2)), rel=1e-5)
    assert float(nt_xent(torch.randn(1, 4), torch.randn(1, 4))) == pytest.approx(0.0, abs=1e-6)


def test_nt_xent_prefers_matching_views():
    z = torch.randn(16, 32)
    assert nt_xent(z, z + 0.01 * torch.randn_like(z)) < nt_xent(z, torch.randn(16, 32))


def test_info_nce_known_value():
    q = torch.eye(3)
    assert float(info_nce(q, q, temperature=1.0)) == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)


def test_info_nce_with_shared_positives():
    # Two windows share the text "a": both keys count as positives (half the target each).
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    e = math.e
    row_a = -math.log(e / (2 * e + 1))
    row_b = -math.log(e / (e + 2))
    assert float(info_nce(x, x, 1.0, pos)) == pytest.approx((2 * row_a + row_b) / 3, rel=1e-6)


def test_clip_loss_is_symmetric_and_matches_info_nce_for_identical_pairs():
    a, b = torch.randn(6, 16), torch.randn(6, 16)
    assert float(clip_loss(a, b, 0.07)) == pytest.approx(float(clip_loss(b, a, 0.07)), rel=1e-5)
    manual = 0.5 * (F.cross_entropy(F.normalize(a) @ F.normalize(b).T / 0.07, torch.arange(6))
                    + F.cross_entropy(F.normalize(b) @ F.normalize(a).T / 0.07, torch.arange(6)))
    assert float(clip_loss(a, b, 0.07)) == pytest.approx(float(manual), rel=1e-5)
    q = torch.eye(3)
    assert float(clip_loss(q, q, 1.0)) == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)


def test_streams_pool_time_per_part_and_parts_per_time():
    parts, chunks, d = 3, 2, 4
    token = torch.tensor([[10.0 * p + k for p in range(parts) for k in range(chunks)]])  # [1, P*K]
    st = token[..., None].expand(1, parts * chunks, d)                                   # token p*K + k
    spatial, temporal = streams(st, parts, chunks)
    assert spatial.shape == (1, parts * d) and temporal.shape == (1, chunks * d)
    assert spatial.view(parts, d)[:, 0].tolist() == [0.5, 10.5, 20.5]   # mean over k of 10p + k
    assert temporal.view(chunks, d)[:, 0].tolist() == [10.0, 11.0]      # mean over p of 10p + k


def test_cross_stream_is_zero_when_both_streams_see_the_same_neighbours():
    a, b = torch.randn(8, 5), torch.randn(8, 5)
    assert float(cross_stream(a, b, a, b, 0.1)) == pytest.approx(0.0, abs=1e-6)
    assert float(cross_stream(a, b, torch.randn(8, 5), torch.randn(8, 5), 0.1)) > 0.01


def _views(b=8, parts=6, chunks=2, d=16):
    torch.manual_seed(0)
    st1 = torch.randn(b, parts * chunks, d)
    return st1, st1 + 0.1 * torch.randn_like(st1)


def _stream_losses(loss: STBLoss, st1, st2):
    (s1, t1), (s2, t2) = streams(st1, 6, 2), streams(st2, 6, 2)
    return (nt_xent(loss.spatial_head(s1), loss.spatial_head(s2), loss.temperature),
            nt_xent(loss.temporal_head(t1), loss.temporal_head(t2), loss.temperature))


@torch.no_grad()
def test_stb_sum_fusion_is_the_two_stream_losses_plus_the_cross_term():
    st1, st2 = _views()
    loss = STBLoss(16, 6, 2, proj_dim=8, fusion="sum", cross_weight=0.0)
    ls, lt = _stream_losses(loss, st1, st2)
    out = loss(st1, st2)
    assert float(out["loss"]) == pytest.approx(float(ls + lt), rel=1e-5)
    weighted = STBLoss(16, 6, 2, proj_dim=8, fusion="sum", cross_weight=0.5)
    weighted.load_state_dict(loss.state_dict())
    out2 = weighted(st1, st2)
    assert float(out2["loss"]) == pytest.approx(float(ls + lt + 0.5 * out2["cross"]), rel=1e-5)


def test_stb_uncertainty_fusion_starts_as_the_sum_and_learns_its_weights():
    st1, st2 = _views()
    loss = STBLoss(16, 6, 2, proj_dim=8, fusion="uncertainty", cross_weight=0.0)
    ls, lt = (x.detach() for x in _stream_losses(loss, st1, st2))
    out = loss(st1, st2)
    assert float(out["loss"].detach()) == pytest.approx(float(ls + lt), rel=1e-5)  # log-variances start at 0
    out["loss"].backward()
    # d/ds (exp(-s) L + s) = 1 - L: a stream with loss above 1 pushes its log-variance up
    assert loss.log_vars.grad.tolist() == pytest.approx([1 - float(ls), 1 - float(lt)], rel=1e-4)


@torch.no_grad()
def test_stb_inverse_fusion_gives_both_streams_the_same_weighted_loss():
    st1, st2 = _views()
    out = STBLoss(16, 6, 2, proj_dim=8, fusion="inverse", cross_weight=0.0)(st1, st2)
    assert float(out["w_spatial"] * out["spatial"]) == pytest.approx(float(out["w_temporal"] * out["temporal"]),
                                                                      rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(out["spatial"] + out["temporal"]), rel=1e-5)


def test_stb_gradient_reaches_the_tokens():
    st1, st2 = _views()
    st1.requires_grad_(True)
    STBLoss(16, 6, 2)(st1, st2)["loss"].backward()
    assert st1.grad is not None and st1.grad.abs().sum() > 0


def test_clip_weights_give_every_label_and_every_clip_of_a_label_equal_weight():
    from bodytalk.train.losses import clip_weights
    # label 0: clip 7 has 3 windows, clip 2 one; label 1: clips 4 and 5, one window each
    labels, clips = np.array([0, 0, 0, 0, 1, 1]), np.array([7, 7, 7, 2, 4, 5])
    w = clip_weights(labels, clips)
    assert w.mean() == pytest.approx(1.0)
    per_clip = {c: w[clips == c].sum() for c in np.unique(clips)}
    assert per_clip[7] == pytest.approx(per_clip[2]) == pytest.approx(per_clip[4]) == pytest.approx(per_clip[5])
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())


def test_head_loss_with_window_weights_is_their_weighted_mean():
    from bodytalk.train.losses import head_loss
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    each = F.cross_entropy(logits, y, reduction="none")
    sw = torch.tensor([1.0, 0.0, 3.0, 0.0])
    got = head_loss({"logits": logits}, y, sample_weight=sw)
    assert float(got) == pytest.approx(float((each * sw).sum() / 4), rel=1e-6)
    ones = head_loss({"logits": logits}, y, sample_weight=torch.ones(4))
    assert float(ones) == pytest.approx(float(head_loss({"logits": logits}, y)), rel=1e-6)
    with pytest.raises(ValueError, match="not both"):
        head_loss({"logits": logits}, y, weight=torch.ones(3), sample_weight=sw)
