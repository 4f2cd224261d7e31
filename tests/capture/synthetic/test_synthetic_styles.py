"""Each emotion style of the ``synthetic:`` source shows in quantities measured from the joints
alone, the way a movement descriptor would see them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bodytalk.capture import source
from bodytalk.capture.layouts_known import KINECT_V2
from bodytalk.capture.sources.synthetic.styles import PARAMS, STYLES

J = {name: i for i, name in enumerate(KINECT_V2.joints)}
FPS = 30
UP = np.array([0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def styled():
    """emotion -> (joints [T, 2, 25, 3], activity labels [T, 2]) for 40 s of two bodies."""
    out = {}
    for emotion in ("neutral", "happy", "sad", "angry", "fearful"):
        with source.create(f"synthetic:?bodies=2&emotion={emotion}&duration=40&seed=11") as src:
            frames = list(src.frames())
        out[emotion] = (np.stack([f.joints for f in frames]).astype(np.float64),
                        np.array([[f.labels[b]["activity"] for b in (1, 2)] for f in frames]))
    return out


def body_frame(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit left and forward directions ``[T, B, 3]`` from the hips (right-handed, Y up:
    forward = left x up)."""
    left = X[:, :, J["HipLeft"]] - X[:, :, J["HipRight"]]
    left[..., 1] = 0
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    return left, np.cross(left, UP)


def head_pitch_deg(X: np.ndarray) -> float:
    """Mean forward tilt of the neck -> head segment from vertical."""
    _, forward = body_frame(X)
    seg = X[:, :, J["Head"]] - X[:, :, J["Neck"]]
    return float(np.degrees(np.arctan2((seg * forward).sum(-1), seg[..., 1])).mean())


def walking_speed(X: np.ndarray, act: np.ndarray) -> float:
    v = np.linalg.norm(np.diff(X[:, :, J["SpineBase"], :][..., [0, 2]], axis=0), axis=-1) * FPS
    return float(v[act[1:] == "walking"].mean())


def vertical_bob(X: np.ndarray, act: np.ndarray) -> float:
    """RMS vertical pelvis velocity while walking, m/s."""
    vy = np.gradient(X[:, :, J["SpineBase"], 1], axis=0) * FPS
    return float(np.sqrt((vy[act == "walking"] ** 2).mean()))


def tremor_power(X: np.ndarray) -> float:
    """Welch power in 7-13 Hz of hands and head relative to the chest, in the body's frame."""
    left, forward = body_frame(X)
    rel = X[:, :, [J["WristLeft"], J["WristRight"], J["HandLeft"], J["HandRight"], J["Head"]]]
    rel = rel - X[:, :, [J["SpineShoulder"]]]
    rel = np.stack([(rel * left[:, :, None]).sum(-1), rel[..., 1], (rel * forward[:, :, None]).sum(-1)], -1)
    seg, hann = 2 * FPS, np.hanning(2 * FPS)
    band = (np.fft.rfftfreq(seg, 1 / FPS) >= 7) & (np.fft.rfftfreq(seg, 1 / FPS) <= 13)
    power = []
    for s in range(0, len(rel) - seg + 1, seg // 2):
        y = rel[s:s + seg] - rel[s:s + seg].mean(0)
        power.append((np.abs(np.fft.rfft(y * hann[:, None, None, None], axis=0)) ** 2)[band].sum(0))
    return float(np.mean(power))


def wrist_span(X: np.ndarray) -> float:
    return float(np.linalg.norm(X[:, :, J["WristLeft"]] - X[:, :, J["WristRight"]], axis=-1).mean())


def test_sad_lowers_the_head_and_walks_slower(styled):
    sad, neutral = styled["sad"], styled["neutral"]
    assert 18 < head_pitch_deg(sad[0]) < 40
    assert head_pitch_deg(sad[0]) - head_pitch_deg(neutral[0]) > 15
    assert walking_speed(*sad) < 0.75 * walking_speed(*neutral)


def test_angry_moves_with_more_acceleration_and_jerk(styled):
    angry, neutral = styled["angry"][0], styled["neutral"][0]
    for order in (2, 3):
        assert np.abs(np.diff(angry, order, axis=0)).mean() > 2 * np.abs(np.diff(neutral, order, axis=0)).mean()


def test_happy_walks_bouncier(styled):
    assert vertical_bob(*styled["happy"]) > 1.6 * vertical_bob(*styled["neutral"])


def test_fearful_trembles(styled):
    assert tremor_power(styled["fearful"][0]) > 20 * tremor_power(styled["neutral"][0])


def test_angry_is_expansive_and_fearful_contracted(styled):
    neutral = wrist_span(styled["neutral"][0])
    assert wrist_span(styled["angry"][0]) > 1.2 * neutral
    assert wrist_span(styled["fearful"][0]) < 0.7 * neutral


def test_style_rows_are_validated():
    neutral = STYLES["neutral"]
    with pytest.raises(ValueError, match="activity weights"):
        dataclasses.replace(neutral, activities={"walking": -1.0})
    with pytest.raises(ValueError, match="unknown"):
        dataclasses.replace(neutral, activities={"dancing": 1.0})
    with pytest.raises(ValueError, match="jerk"):
        dataclasses.replace(neutral, jerk=2.0)
    assert neutral.vector()[PARAMS.index("speed")] == neutral.speed
