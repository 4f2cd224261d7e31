import numpy as np
import pytest

from bodytalk.capture.windowing import WindowConfig, Windower, reflect_index

J = 17


def _frame(t: float, body_value: float = 0.0):
    """One body whose every coordinate equals ``t`` (so interpolation is checkable)."""
    joints = np.full((1, J, 3), t + body_value, dtype=np.float32)
    return t, np.array([0], np.int32), joints, np.ones((1, J), np.float32)


def _run(times, cfg=WindowConfig()):
    w = Windower(cfg)
    out = []
    for t in times:
        out.extend(w.push(*_frame(t)))
    return w, out


def test_regular_stream_windows_length_and_hop():
    times = np.arange(0, 4.0, 1 / 30)
    _, wins = _run(times)
    assert [w.seq for w in wins] == list(range(len(wins)))
    assert all(w.joints.shape == (60, J, 3) and w.confidence.shape == (60, J) for w in wins)
    starts = np.array([w.t_start for w in wins])
    np.testing.assert_allclose(np.diff(starts), 0.5, atol=1e-6)
    # 4 s of frames -> windows starting at 0, 0.5, ... up to 2.0 (a window needs 60 grid points)
    assert len(wins) == 5
    assert not any(w.interpolated.any() for w in wins)


def test_jittered_timestamps_are_resampled_to_the_grid():
    rng = np.random.default_rng(0)
    times = np.arange(0, 3.0, 1 / 30) + rng.uniform(-0.004, 0.004, 90)
    times[0] = 0.0
    _, wins = _run(np.sort(times))
    w = wins[0]
    grid = w.t_start + np.arange(60) / 30
    # every coordinate equals the timestamp, so a correct linear resampling returns the grid times
    np.testing.assert_allclose(w.joints[:, 0, 0], grid, atol=1e-4)


def test_short_gap_is_interpolated_and_flagged():
    times = [t for t in np.arange(0, 3.0, 1 / 30) if not (1.0 < t < 1.15)]  # ~4 frames missing
    _, wins = _run(times)
    w = wins[0]
    flagged = w.t_start + np.flatnonzero(w.interpolated) / 30
    assert len(flagged) >= 3 and np.all((flagged > 1.0) & (flagged < 1.15))
    # values inside the gap lie on the line between the samples around it
    np.testing.assert_allclose(w.joints[w.interpolated, 0, 0], flagged, atol=1e-4)


def test_long_gap_restarts_the_window():
    times = list(np.arange(0, 1.5, 1 / 30)) + list(np.arange(2.5, 5.0, 1 / 30))
    w, wins = _run(times)
    # the 1.5 s before the gap is shorter than the window: one padded window that ends before it
    assert wins[0].padded and wins[0].real_frames == 45 and wins[0].t_end < 1.5
    assert wins[1:], "windows after the restart"
    assert all(win.t_start >= 2.5 - 1e-9 and not win.padded for win in wins[1:]), "no window bridges the 1 s gap"
    assert w.bodies[0].restarts == 1


def test_low_confidence_is_carried_not_zeroed():
    cfg = WindowConfig()
    w = Windower(cfg)
    wins = []
    for t in np.arange(0, 2.5, 1 / 30):
        t_, ids, joints, conf = _frame(t, body_value=1.0)
        conf[0, 4] = 0.2  # head inferred
        wins.extend(w.push(t_, ids, joints, conf))
    assert np.allclose(wins[0].confidence[:, 4], 0.2)
    np.testing.assert_allclose(wins[0].joints[:, 4, 0], wins[0].t_start + 1.0 + np.arange(60) / 30, atol=1e-4)


def test_bodies_are_windowed_separately_and_forgotten():
    w = Windower(WindowConfig())
    out = []
    for t in np.arange(0, 3.0, 1 / 30):
        ids = np.array([3, 7] if t < 1.0 else [3], np.int32)
        joints = np.zeros((len(ids), J, 3), np.float32)
        out.extend(w.push(t, ids, joints, np.ones((len(ids), J), np.float32), {3: {"emotion": "sad"}}))
    # body 7 left after 1 s, before its first window: one padded window of its 30 frames
    assert [(win.body, win.real_frames) for win in out if win.body == 7] == [(7, 30)]
    assert all(not win.padded for win in out if win.body == 3)
    assert 7 not in w.bodies
    assert next(win for win in out if win.body == 3).labels == {"emotion": "sad"}


@pytest.mark.parametrize("kw", [dict(window=0), dict(hop=-1), dict(window=0.03)])
def test_config_validation(kw):
    with pytest.raises(ValueError):
        WindowConfig(**kw)


def _bodies_together(n: int, cfg: WindowConfig, seconds: float = 4.0) -> list:
    """``n`` bodies tracked from the same frame on; every coordinate of body b equals t + 100 b."""
    w, out = Windower(cfg), []
    ids = np.arange(n, dtype=np.int32)
    for t in np.arange(0, seconds, 1 / 30):
        joints = np.repeat((t + 100.0 * ids)[:, None, None], J, axis=1).repeat(3, axis=2).astype(np.float32)
        out.extend(w.push(t, ids, joints, np.ones((n, J), np.float32)))
    return out


def test_stagger_spreads_bodies_that_appear_together_over_the_hop():
    plain = _bodies_together(16, WindowConfig())
    assert len({round(win.t_end, 4) for win in plain if win.seq == 0}) == 1     # one burst per hop
    staggered = _bodies_together(16, WindowConfig(stagger=True))
    first = {win.body: win for win in staggered if win.seq == 0}
    phases = sorted(round(win.t_end * 30) % 15 for win in first.values())
    assert len(first) == 16 and len(set(phases)) >= 13                      # 16 bodies, 15 frame phases
    # The largest share of bodies closing a window on one frame: 2 of 16 instead of all 16.
    assert max(phases.count(p) for p in phases) <= 2
    assert max(win.t_end for win in first.values()) - min(win.t_end for win in first.values()) < 0.5
    for body in range(16):
        wins = [win for win in staggered if win.body == body]
        assert [win.seq for win in wins] == list(range(len(wins)))
        np.testing.assert_allclose(np.diff([win.t_start for win in wins]), 0.5, atol=1e-6)
        for win in wins:                      # the stamps still name the frames the window holds
            assert win.joints.shape == (60, J, 3)
            np.testing.assert_allclose(win.joints[[0, -1], 0, 0], [win.t_start + 100 * body, win.t_end + 100 * body],
                                       atol=1e-4)


def test_reflect_index_plays_back_and_forth():
    assert reflect_index(4, 11).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert reflect_index(1, 3).tolist() == [0, 0, 0]


def test_source_shorter_than_the_window_gives_one_padded_window():
    """A 20-frame clip (the shortest Bandai clip): one window of 60 frames, reflected, flagged."""
    w, wins = _run(np.arange(20) / 30)
    assert wins == []
    (win,) = w.flush()
    assert win.padded and win.real_frames == 20 and win.joints.shape == (60, J, 3)
    assert win.t_start == 0.0 and win.t_end == pytest.approx(19 / 30)
    # every coordinate equals its frame time: the padding plays the 20 real frames back and forth
    np.testing.assert_allclose(win.joints[:, 0, 0], reflect_index(20, 60) / 30, atol=1e-5)
    assert win.joints[20, 0, 0] == pytest.approx(18 / 30), "reflected, not a frozen last frame"
    assert w.flush() == [], "the stretch counts once"


def test_a_body_that_filled_a_window_gives_no_padded_one():
    w, wins = _run(np.arange(0, 2.2, 1 / 30))
    assert len(wins) == 1 and not wins[0].padded and wins[0].real_frames is None
    assert w.flush() == []


def test_a_stretch_the_stagger_phase_held_back_gives_a_whole_window_not_a_padded_one():
    """With stagger on, a body's first window waits for its phase; a stretch that ends after a full
    window of frames but before that phase gives its latest whole window, unpadded."""
    cfg = WindowConfig(stagger=True)
    w = Windower(cfg)
    w._started = 1                         # the second body: its phase is not 0 (golden-ratio sequence)
    frames = 62
    wins = [win for t in np.arange(frames) / 30 for win in w.push(*_frame(t))]
    assert wins == [], "the phase holds the first window back past 60 frames"
    (win,) = w.flush()
    assert not win.padded and win.real_frames is None and win.joints.shape == (60, J, 3)
    np.testing.assert_allclose(win.joints[[0, -1], 0, 0], [(frames - 60) / 30, (frames - 1) / 30], atol=1e-5)
    assert (win.t_start, win.t_end) == (pytest.approx((frames - 60) / 30), pytest.approx((frames - 1) / 30))


def test_a_three_frame_glimpse_still_gives_its_window():
    """The windower never drops a stretch; the model decides it is too short to read."""
    w, _ = _run([0.0, 1 / 30, 2 / 30])
    (win,) = w.flush()
    assert win.real_frames == 3 and win.joints.shape[0] == 60


def test_windows_of_flushes_at_the_end_of_the_source():
    from bodytalk.capture.source import create
    from bodytalk.capture.windowing import windows_of

    with create("synthetic:?bodies=2&duration=1&seed=3") as src:
        wins = list(windows_of(src))
    assert len(wins) == 2 and all(w.padded and 25 <= w.real_frames <= 31 for w in wins)
    assert len({w.body for w in wins}) == 2, "one padded window per body"
