"""Augmentations: shapes, seeded determinism, valid skeletons (bone lengths, no NaN), MG ops subtle
and rhythm-keeping, and the turn surviving the encoder's facing normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture.layouts import U, UNIFIED_PARENTS
from bodytalk.capture.windowing import WindowConfig
from bodytalk.model.skeleton.features import WindowInput, prepare
from bodytalk.train.augment import OPS, POLICIES, AugmentConfig, Augmenter, rotation
from bodytalk.train.readers import read

PARENTS = np.array(UNIFIED_PARENTS)
BONES = np.nonzero(PARENTS >= 0)[0]
RIGID_TOLERANCE = 0.02  # interpolating between neighbouring frames shortens a bone by < 2 %


def bone_lengths(j: np.ndarray) -> np.ndarray:
    return np.linalg.norm(j[:, BONES] - j[:, PARENTS[BONES]], axis=-1)  # [T, 16]


@pytest.fixture(scope="module")
def window():
    """A real 2 s window of brisk synthetic motion: joints [60, 17, 3], confidence [60, 17]."""
    raw = read("synthetic:?bodies=1&duration=4&seed=3&emotion=angry", WindowConfig(), None)
    return raw.joints[1].astype(np.float64), raw.confidence[1].astype(np.float64)


@pytest.fixture(scope="module")
def periodic(window):
    """The first pose held still, the right forearm swinging with a period of 10 frames."""
    j = np.repeat(window[0][:1], 60, axis=0)
    elbow, wrist = U["r_elbow"], U["r_wrist"]
    angle = 0.4 * np.sin(2 * np.pi * np.arange(60) / 10)
    rot = rotation(np.array([1.0, 0.0, 0.0]), angle)                      # [60, 3, 3]
    j[:, wrist] = j[:, elbow] + np.einsum("tij,tj->ti", rot, j[:, wrist] - j[:, elbow])
    return j, window[1]


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_keeps_shapes_and_adds_no_nan(window, name):
    j, c = window
    for seed in range(10):
        jo, co = OPS[name].fn(j, c, np.random.default_rng(seed))
        assert jo.shape == j.shape and co.shape == c.shape
        assert np.isfinite(jo).all() and np.isfinite(co).all()
        assert (co >= 0).all() and (co <= 1).all()


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if op.rigid])
def test_rigid_ops_keep_bone_lengths(window, name):
    j, c = window
    ref = bone_lengths(j).mean(0)
    for seed in range(10):
        jo, _ = OPS[name].fn(j, c, np.random.default_rng(seed))
        assert np.abs(bone_lengths(jo) / ref - 1).max() < RIGID_TOLERANCE, name


def test_shear_and_scale_change_proportions_which_is_why_they_are_not_rigid(window):
    j, c = window
    ref = bone_lengths(j).mean(0)
    for name in ("shear", "scale"):
        jo, _ = OPS[name].fn(j, c, np.random.default_rng(0))
        assert np.abs(bone_lengths(jo) / ref - 1).max() > RIGID_TOLERANCE


@pytest.mark.parametrize("policy", ["standard", "mg"])
def test_policies_are_deterministic_with_a_seed(window, policy):
    aug = Augmenter(AugmentConfig(policy=policy, p=1.0))
    a = aug(*window, np.random.default_rng(7))
    b = aug(*window, np.random.default_rng(7))
    other = aug(*window, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], other[0])
    assert a[0].dtype == np.float32 and a[0].shape == window[0].shape


def test_mg_policy_keeps_the_skeleton_valid(window):
    aug = Augmenter(AugmentConfig(policy="mg", p=1.0))
    ref = bone_lengths(window[0]).mean(0)
    for seed in range(20):
        j, c = aug(*window, np.random.default_rng(seed))
        assert np.isfinite(j).all()
        assert np.abs(bone_lengths(j.astype(np.float64)) / ref - 1).max() < RIGID_TOLERANCE


def _pose_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean joint displacement (m) of root-relative poses."""
    rel = lambda x: x - x[:, [U["pelvis"]]]  # noqa: E731
    return float(np.linalg.norm(rel(a) - rel(b), axis=-1).mean())


def test_mg_spatial_ops_are_subtle_next_to_the_standard_ones(window):
    j, c = window
    def change(name):
        return np.mean([_pose_change(OPS[name].fn(j, c, np.random.default_rng(s))[0], j) for s in range(10)])
    assert 0.003 < change("jitter") < 0.03 and 0.001 < change("mg_rotate") < 0.03
    assert change("shear") > 3 * change("jitter") and change("rotate") > 2 * change("mg_rotate")


def test_repeat_copies_whole_frames_and_keeps_the_rhythm(periodic):
    j, c = periodic
    changed = 0
    for seed in range(12):
        jo, _ = OPS["repeat"].fn(j, c, np.random.default_rng(seed))
        # every output frame is an input frame ...
        d = np.linalg.norm(jo[:, None] - j[None], axis=-1).max(-1).min(1)
        assert d.max() < 1e-9
        # ... and the swing still repeats every 10 frames (one cycle repeated or dropped)
        np.testing.assert_allclose(jo[10:], jo[:-10], atol=1e-9)
        changed += not np.allclose(jo, j)
    assert changed > 0  # it does move the cycle's phase


def test_the_turn_survives_facing_normalisation(window):
    """prepare() undoes a constant yaw; the augmentation's turn over the window must remain."""
    j, c = window
    base = prepare(WindowInput(j, c))
    jo, co = OPS["rotate"].fn(j, c, np.random.default_rng(1))
    assert np.abs(prepare(WindowInput(jo, co)) - base)[..., :3].max() > 0.02


def test_config_rejects_unknown_ops_and_lists_policies():
    with pytest.raises(ValueError, match="unknown augmentation.*known: crop"):
        AugmentConfig(ops=("crop", "flip"))
    assert set(POLICIES) == {"none", "standard", "mg", "content"}
    assert not Augmenter(AugmentConfig(policy="none"))
    assert Augmenter(AugmentConfig(ops=("jitter",))).cfg.names == ("jitter",)


def test_mirror_swaps_left_and_right_joints(window):
    """A mirrored window puts each left joint where its right twin was, reflected in x (about the
    mean pelvis), and twice mirrored is the window itself."""
    j, c = window
    c = c.copy()
    c[:, U["l_wrist"]] = 0.3                      # a marked left wrist: its confidence must move too
    m, mc = OPS["mirror"].fn(j, c, None)
    centre = j[:, U["pelvis"], 0].mean()
    for left in ("l_shoulder", "l_elbow", "l_wrist", "l_hip", "l_knee", "l_ankle"):
        right = left.replace("l_", "r_")
        for a, b in ((left, right), (right, left)):
            np.testing.assert_allclose(m[:, U[a], 0], 2 * centre - j[:, U[b], 0])
            np.testing.assert_allclose(m[:, U[a], 1:], j[:, U[b], 1:])
    np.testing.assert_allclose(m[:, U["head"], 1:], j[:, U["head"], 1:])
    np.testing.assert_allclose(mc[:, U["r_wrist"]], 0.3)
    np.testing.assert_allclose(mc[:, U["l_wrist"]], c[:, U["r_wrist"]])
    back, _ = OPS["mirror"].fn(m, mc, None)
    np.testing.assert_allclose(back, j, atol=1e-12)
    # The body still faces the same way: the facing vector's z keeps its sign, its x flips.
    from bodytalk.model.skeleton.features import facing_yaw
    assert np.isclose(np.cos(facing_yaw(m[0])), np.cos(facing_yaw(j[0])), atol=1e-9)


def test_mirror_only_augmentation_is_drawn_from_cached_variants(window):
    """A non-random op list gives its variants (each subset, with its probability) for caching."""
    aug = Augmenter(AugmentConfig(ops=("mirror",), p=0.3))
    variants = aug.variants()
    assert [round(p, 6) for p, _ in variants] == [0.7, 0.3]
    j, c = window
    np.testing.assert_allclose(aug.apply(j, c, variants[1][1])[0], OPS["mirror"].fn(j, c, None)[0], atol=1e-6)
    assert Augmenter(AugmentConfig(policy="content")).variants() is None   # rotate draws at random
