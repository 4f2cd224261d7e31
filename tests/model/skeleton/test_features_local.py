"""Feature version 2 (heading-invariant local pose, root motion in the body frame, body-size
normalisation): exact invariances, and the label of a trained model that follows from them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bodytalk.capture.layouts import U
from bodytalk.capture.windowing import WindowConfig
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.skeleton.features import FEATURE_CHANNELS, WindowInput, prepare
from bodytalk.train.readers import read


def _turn(j: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Each frame turned about +Y by ``yaw[t]`` around the origin."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x, y, z = j[..., 0], j[..., 1], j[..., 2]
    return np.stack([c * x + s * z, y, -s * x + c * z], -1)


def _along_curve(j: np.ndarray, turn_rate: float, fps: float = 30.0) -> np.ndarray:
    """The same movement walked along a curve: each frame's pose turned by a heading that grows
    at ``turn_rate`` rad/s, and the pelvis path integrated from the turned body-frame steps."""
    t = len(j)
    yaw = turn_rate * np.arange(t) / fps
    pelvis = j[:, U["pelvis"]]
    local = _turn(j - pelvis[:, None], yaw)                          # pose turned about its pelvis
    steps = _turn(np.diff(pelvis, axis=0)[:, None], yaw[1:])[:, 0]     # each step turned with the body
    path = np.concatenate([pelvis[:1], pelvis[0] + np.cumsum(steps, 0)])
    return local + path[:, None]


@pytest.fixture(scope="module")
def walk():
    """A real synthetic window that walks (the pelvis moves): joints [60, 17, 3], confidence [60, 17]."""
    raw = read("synthetic:?bodies=1&duration=4&seed=5&emotion=happy", WindowConfig(), None)
    return raw.joints[2].astype(np.float64), raw.confidence[2]


def test_version_2_shape_and_channels(walk):
    x = prepare(WindowInput(*walk), 60, 2)
    assert x.shape == (60, 17, FEATURE_CHANNELS[2]) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, U["pelvis"], :3], 0, atol=1e-6)
    np.testing.assert_allclose(x[:, :, -1], walk[1], atol=1e-6)


def test_version_2_is_invariant_to_facing_position_and_size(walk):
    j, c = walk
    a = prepare(WindowInput(j, c), 60, 2)
    moved = _turn(j, np.full(len(j), 2.3)) * 1.15 + np.array([4.0, 0.3, -1.5])
    np.testing.assert_allclose(prepare(WindowInput(moved, c), 60, 2), a, atol=1e-4)


def test_version_2_is_invariant_to_walking_along_a_curve_and_version_1_is_not(walk):
    j, c = walk
    curved = _along_curve(j, turn_rate=0.8)
    assert np.abs(curved - j).max() > 0.1                          # a real detour, not a no-op
    np.testing.assert_allclose(prepare(WindowInput(curved, c), 60, 2), prepare(WindowInput(j, c), 60, 2),
                               atol=1e-4)
    assert np.abs(prepare(WindowInput(curved, c), 60, 1) - prepare(WindowInput(j, c), 60, 1)).max() > 0.05


@pytest.mark.parametrize("ensemble", [False, True], ids=["one-trunk", "three-trunks-and-statistics"])
def test_a_trained_version_2_model_gives_the_same_label_turned_and_on_a_curve(walk, ensemble):
    """A few steps of training make a model that is not constant; its label (and probabilities)
    for the window, the window turned about Y and the window walked along a curve are the same.
    The served recipe's ensemble too: three trunks and the fitted statistics stream."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from bodytalk.train.losses import head_loss

    torch.manual_seed(0)
    cfg = EncoderConfig(num_labels=3, features=2, arch="tcn", strides=(1, 2, 1, 2), time_chunks=3,
                        temporal_kernel=5, part_width=8, members=3 if ensemble else 1, statistics=ensemble)
    enc = SkeletonEncoder(cfg)
    rng = np.random.default_rng(0)
    j, c = walk
    train = [(_turn(j, np.full(60, a)) * s, lab) for lab, s in enumerate((0.9, 1.0, 1.1)) for a in rng.uniform(0, 6, 4)]
    x = torch.from_numpy(np.stack([cfg.featurise(WindowInput(w, c)) for w, _ in train]))
    x = x + 0.1 * torch.arange(3).repeat_interleave(4)[:, None, None, None]   # separable classes
    y = torch.arange(3).repeat_interleave(4)
    opt = torch.optim.Adam(enc.parameters(), 1e-2)
    for _ in range(5):
        loss = head_loss(enc(x, torch.zeros(12, dtype=torch.long)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    enc.eval()
    if ensemble:
        stats = enc.stats_head.features(x).numpy()
        scaler = StandardScaler().fit(stats)
        lr = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(stats), y.numpy())
        enc.stats_head.set(scaler.mean_, scaler.scale_, lr.coef_, lr.intercept_, lr.classes_)
    variants = [j, _turn(j, np.full(60, -1.2)) + np.array([2.0, 0.0, 1.0]), _along_curve(j, -0.6)]
    with torch.no_grad():
        probs = enc(torch.from_numpy(np.stack([cfg.featurise(WindowInput(v, c)) for v in variants])),
                    torch.zeros(3, dtype=torch.long))["logits"].softmax(1)
    assert probs[0].max() < 0.999 or len(set(probs.argmax(1).tolist())) == 1
    assert len(set(probs.argmax(1).tolist())) == 1
    np.testing.assert_allclose(probs[1:].numpy(), probs[:1].expand(2, -1).numpy(), atol=1e-4)


def test_old_encoder_configs_read_as_version_1_stgcn():
    """A checkpoint config written before the key existed gets the representation it trained on."""
    old = {k: v for k, v in EncoderConfig(num_labels=5).to_dict().items()
           if k not in ("features", "arch", "part_width", "input_noise")}
    old["channels"] = 10
    cfg = EncoderConfig(**old)
    assert (cfg.features, cfg.arch, cfg.channels) == (1, "stgcn", 10)
    with pytest.raises(ValueError, match="channels 10 != 14"):
        EncoderConfig(num_labels=5, features=2, channels=10)


def test_window_statistics_are_named_finite_and_heading_invariant(walk):
    """Baseline (a)'s kinematic statistics: one value per name, and the same for the window turned
    about Y and moved (they summarise the version-2 local representation)."""
    from bodytalk.model.skeleton import statistics

    j, c = walk
    a = statistics.compute(WindowInput(j, c))
    assert a.shape == (len(statistics.NAMES),) and np.isfinite(a).all()
    b = statistics.compute(WindowInput(_turn(j, np.full(len(j), 0.7)) + np.array([1.0, 0.0, 2.0]), c))
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert a[statistics.NAMES.index("l_wrist_speed_mean")] > 0
