"""Movement descriptors on synthetic motions whose speeds, angles and frequencies are known."""
from __future__ import annotations

import numpy as np
import pytest

from bodytalk.capture.layouts import U
from bodytalk.model.skeleton import descriptors as D
from tests.model import motions as M

WRISTS = [U["l_wrist"], U["r_wrist"]]


def describe(x: np.ndarray, c: np.ndarray | None = None) -> D.Descriptors:
    return D.compute(x.astype(np.float32), M.confidence(x) if c is None else c, M.FPS)


def test_translation_speed_is_exact():
    x = M.place(M.walk(M.still(), 0.6), yaw=53.0, offset=(1.0, 0.0, -2.0))
    d = describe(x)
    assert d["speed"].value == pytest.approx(0.6, rel=0.02)
    assert d["speed"].phrase == "slow walk (0.60 m/s)"
    assert d["acceleration"].value == pytest.approx(0.0, abs=0.01)
    assert d["hand_speed"].value == pytest.approx(0.0, abs=0.01)    # limbs are measured against the pelvis
    assert d["stillness"].value == 0.0
    assert d["speed_change"].phrase == "steady pace"


def test_speeding_up_is_the_second_half_minus_the_first():
    x, t = M.still(), M.time()
    x[..., 2] += (0.4 * t + 0.2 * t ** 2)[:, None]                  # 0.4 -> 1.2 m/s over 2 s
    d = describe(x)
    # Velocity exists for frames 3..56 (smoothing and differences take the edges): the halves'
    # mean frames are 27 apart, 0.9 s at 0.4 m/s².
    assert d["speed_change"].value == pytest.approx(0.36, abs=0.01)
    assert d["speed_change"].phrase == "speeding up by 0.36 m/s"
    assert d["acceleration"].value == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize("deg, phrase",
                         [(25.0, "head lowered 25°"), (-15.0, "head raised 15°"), (4.0, "head level")])
def test_head_pitch_about_the_neck(deg, phrase):
    d = describe(M.place(M.head_pitch(M.still(), deg), yaw=-120.0))
    assert d["head_pitch"].value == pytest.approx(deg, abs=2.0)
    assert d["head_pitch"].phrase == phrase
    assert d["trunk_lean"].value == pytest.approx(0.0, abs=0.5)


@pytest.mark.parametrize("deg, phrase", [(10.0, "trunk leaning forward 10°"), (-12.0, "trunk leaning back 12°")])
def test_trunk_lean_along_the_facing_direction(deg, phrase):
    d = describe(M.place(M.trunk_lean(M.still(), deg), yaw=200.0))
    assert d["trunk_lean"].value == pytest.approx(deg, abs=1.0)
    assert d["trunk_lean"].phrase == phrase
    assert d["head_pitch"].value == pytest.approx(0.0, abs=1.0)      # the head moved with the thorax


def test_wrist_at_2_hz_gives_tempo_2_hz():
    d = describe(M.oscillate(M.still(), [U["r_wrist"]], hz=2.0, amplitude=0.1))
    assert d["tempo"].value == pytest.approx(2.0, abs=0.1)
    assert d["tempo_confidence"].value > 0.8
    assert d["tempo"].phrase.startswith("rhythmic movement at 2.0")
    assert d["arm_asymmetry"].value > 0.3                             # only the right arm moves
    assert d["arm_asymmetry"].phrase == "right arm more active than the left"


def test_tempo_survives_scattered_dropouts():
    x = M.oscillate(M.still(), [U["r_wrist"]], hz=2.0, amplitude=0.1)
    c = M.confidence(x)
    c[np.random.default_rng(3).random(len(c)) < 0.3, U["r_wrist"]] = 0.0   # bridged by interpolation
    d = describe(x, c)
    assert d["tempo"].value == pytest.approx(2.0, abs=0.15)


def test_vertical_bounce_amplitude_and_tempo():
    x = M.walk(M.oscillate(M.still(), list(range(17)), hz=1.8, amplitude=0.03), 1.2)
    d = describe(x)
    assert d["bounce"].value == pytest.approx(6.0, rel=0.1)          # cm, peak to peak
    assert d["tempo"].value == pytest.approx(1.8, abs=0.1)
    assert d["speed"].value == pytest.approx(1.2, rel=0.02)


def test_still_body():
    d = describe(M.still())
    assert d["stillness"].value == pytest.approx(100.0)
    assert d["stillness"].phrase.startswith("mostly still")
    assert d["speed"].value == pytest.approx(0.0, abs=1e-9)
    assert d["tempo"].value == 0.0 and d["tempo"].phrase == "no clear rhythm"
    assert d["tremor"].phrase == "no tremor"
    assert d["jerk"].value == pytest.approx(0.0, abs=1e-6)


def test_tremor_at_8_hz_against_none_and_against_a_large_slow_swing():
    tremor = describe(M.oscillate(M.still(), WRISTS, hz=8.0, amplitude=0.003, axis=0))["tremor"].value
    none = describe(M.still())["tremor"].value
    swing = describe(M.oscillate(M.still(), WRISTS, hz=1.0, amplitude=0.2, axis=2))["tremor"].value
    assert tremor == pytest.approx(3.0 / np.sqrt(2), rel=0.15)       # mm RMS of a 3 mm sine
    assert none == pytest.approx(0.0, abs=1e-6)
    assert swing < 0.2


def test_jerk_of_a_sinusoid_matches_the_analytic_value():
    hz, amplitude = 1.0, 0.1
    # 68 frames leave 60 jerk samples (smoothing and differences take 4 at each end): 2 whole periods.
    d = describe(M.oscillate(M.still(68), [U["r_wrist"]], hz=hz, amplitude=amplitude))
    w = 2 * np.pi * hz
    # |d3/dt3 A sin(wt)| averages A w^3 2/pi; one moving joint of the seven key joints. Smoothing
    # and finite differences lose about 3 % at 1 Hz.
    assert d["jerk"].value == pytest.approx(amplitude * w ** 3 * 2 / np.pi / 7, rel=0.05)
    assert d["jerk"].phrase.startswith("smooth movement")


def test_arms_close_and_arms_spread():
    rest = describe(M.still())
    assert rest["expansion"].value == pytest.approx(0.21, abs=1e-6)
    assert rest["expansion"].phrase.startswith("arms close to the body")
    assert rest["arm_height"].value == pytest.approx(-0.52, abs=1e-6)
    assert rest["arm_height"].phrase.startswith("arms hanging down")
    t_pose = M.still()
    t_pose[:, WRISTS] = [[0.75, 1.42, 0.0], [-0.75, 1.42, 0.0]]
    spread = describe(M.place(t_pose, yaw=77.0))
    assert spread["expansion"].value == pytest.approx(0.75, abs=1e-6)
    assert spread["expansion"].phrase.startswith("arms spread wide")
    assert spread["arm_height"].phrase == "a hand near shoulder height"
    assert spread["volume"].value > 3 * rest["volume"].value


def test_descriptors_do_not_depend_on_facing_direction_or_place():
    rng = np.random.default_rng(7)
    for _ in range(5):
        x, c = M.random_motion(rng)
        base = D.as_vector(D.compute(x, c, M.FPS))
        for yaw in (37.0, 90.0, 200.0):
            turned = M.place(x.astype(np.float64), yaw, offset=(5.0, 0.0, -4.0)).astype(np.float32)
            np.testing.assert_allclose(D.as_vector(D.compute(turned, c, M.FPS)), base, rtol=1e-3, atol=1e-3)


def test_a_short_dropout_does_not_bias_speed():
    x = M.walk(M.still(), 0.6)
    c = M.confidence(x)
    c[20:23] = 0.0
    x[20:23] = np.nan                                                 # lost frames may carry anything
    d = describe(x, c)
    assert d["speed"].value == pytest.approx(0.6, rel=0.02)
    assert d.valid_share == pytest.approx(57 / 60)


@pytest.mark.parametrize("case", ["nan", "zero_confidence", "below_threshold"])
def test_unusable_input_says_insufficient_data(case):
    x, c = M.still(), M.confidence(M.still())
    if case == "nan":
        x[:] = np.nan
    else:
        c[:] = 0.0 if case == "zero_confidence" else 0.49
    d = describe(x, c)
    assert not any(v.valid for v in d.values())
    assert all(v.phrase.endswith("insufficient data") for v in d.values())
    assert np.isnan(D.as_vector(d)).all()
    assert d.valid_share == 0.0


@pytest.mark.parametrize("T", [0, 1, 4, 8])
def test_too_short_windows_do_not_crash(T):
    d = describe(M.walk(M.still(T), 0.6))
    assert not d["speed"].valid and not d["jerk"].valid and not d["tempo"].valid
    assert d["speed"].phrase == "body speed: insufficient data"
    assert d["trunk_lean"].valid == (T >= D.MIN_SAMPLES)              # posture needs a few frames only


def test_a_low_frame_rate_cannot_show_tremor():
    x = M.oscillate(M.still(20), WRISTS, hz=2.0, amplitude=0.003)
    d = D.compute(x, M.confidence(x), fps=8.0)                        # Nyquist 4 Hz, below the band
    assert not d["tremor"].valid and d["speed"].valid


def test_missing_wrists_invalidate_only_what_needs_them():
    x = M.walk(M.still(), 0.6)
    c = M.confidence(x)
    c[:36, WRISTS] = 0.0                                              # wrists lost for 60 % of the window
    d = describe(x, c)
    for name in ("hand_speed", "expansion", "arm_height", "tremor", "arm_asymmetry", "activity"):
        assert not d[name].valid, name
    assert d["speed"].valid and d["head_pitch"].valid


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="to_unified"):
        D.compute(np.zeros((60, 25, 3)), np.ones((60, 25)), 30.0)
    with pytest.raises(ValueError, match="fps"):
        D.compute(M.still(), M.confidence(M.still()), 0.0)


def test_vector_and_json_forms():
    c = M.confidence(M.still())
    c[:, WRISTS] = 0.0
    d = describe(M.still(), c)
    v = D.as_vector(d)
    assert v.shape == (len(D.NAMES),) and v.dtype == np.float32
    assert np.isnan(v[D.NAMES.index("hand_speed")]) and v[D.NAMES.index("speed")] == 0.0
    assert not np.isnan(D.as_vector(d, fill=0.0)).any()
    js = d.to_jsonable()
    assert list(js) == list(D.NAMES)
    assert js["hand_speed"]["value"] is None and js["speed"]["unit"] == "m/s"


def test_bandai_sad_walk_reads_lower_and_slower_than_happy(shared_data):
    from bodytalk.capture import source
    folder = shared_data("bandai-namco-ds1", "data")

    def mean_descriptors(style: str) -> dict[str, float]:
        src = source.create(f"bvh:{folder}/dataset-1_walk_{style}_001.bvh")
        src.open()
        frames = list(src.frames())
        u, c = src.layout.to_unified(np.stack([f.joints[0] for f in frames]),
                                     np.stack([f.confidence[0] for f in frames]))
        windows = [D.compute(u[s:s + 60], c[s:s + 60], src.fps) for s in range(0, len(u) - 59, 30)]
        return {n: float(np.nanmean([w[n].value for w in windows])) for n in D.NAMES}

    sad, happy = mean_descriptors("sad"), mean_descriptors("happy")
    assert sad["head_pitch"] > happy["head_pitch"] + 10
    assert sad["speed"] < happy["speed"]
    assert sad["bounce"] < happy["bounce"]


def test_model_features_are_standardised_and_flag_missing_values():
    from bodytalk.model.skeleton.descriptor_bands import SPECS

    c = M.confidence(M.still())
    c[:, WRISTS] = 0.0
    d = describe(M.walk(M.still(), 0.6), c)
    f = D.as_features(d)
    n = len(D.NAMES)
    assert f.shape == (D.FEATURE_DIM,) == (2 * n,) and f.dtype == np.float32
    i, h = D.NAMES.index("speed"), D.NAMES.index("hand_speed")
    assert f[i] == pytest.approx((d["speed"].value - SPECS["speed"].neutral) / SPECS["speed"].scale, rel=1e-5)
    assert f[n + i] == 1.0
    assert f[h] == 0.0 and f[n + h] == 0.0                            # missing: zero value, flag off
    assert np.abs(f[:n]).max() <= D.FEATURE_CLIP
