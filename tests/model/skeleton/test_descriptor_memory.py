"""Descriptor filters are short kernels: the same numbers as the dense T x T matrices they replaced,
in memory that grows with T, not T squared."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from bodytalk.model.skeleton import descriptors as desc
from tests.model.serving.helpers import synthetic_windows


def _dense(T: int, fps: float) -> dict:
    """The former implementation: one [rows, T] matrix per derivative (kept here as the reference)."""
    k = len(desc.SMOOTH)
    s = np.zeros((T - k + 1, T))
    for i in range(len(s)):
        s[i, i:i + k] = desc.SMOOTH
    filters = {"v": (s[2:] - s[:-2]) * (fps / 2),
               "a": (s[2:] - 2 * s[1:-1] + s[:-2]) * fps ** 2,
               "j": (s[4:] - 2 * s[3:-1] + 2 * s[1:-3] - s[:-4]) * (fps ** 3 / 2)}
    return {name: (f, (np.abs(f) > 1e-9 * np.abs(f).max()).astype(np.float64)) for name, f in filters.items()}


def _dense_apply(filters, name, x, bad):
    f, reads = filters[name]
    return (f @ x.reshape(len(x), -1)).reshape(len(f), *x.shape[1:]), reads @ bad.astype(np.float64) == 0


@pytest.mark.parametrize("fps", [30.0, 120.0])
def test_kernels_give_the_dense_filters_numbers(fps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 17, 3)).cumsum(axis=0) * 0.01
    bad = rng.random((90, 17)) < 0.05
    for name in ("v", "a", "j"):
        got, ok = desc._apply(desc._kernels(fps), name, x, bad)
        want, want_ok = _dense_apply(_dense(len(x), fps), name, x, bad)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
        np.testing.assert_array_equal(ok, want_ok)


def test_descriptors_of_real_windows_are_unchanged(monkeypatch):
    windows = synthetic_windows(bodies=2, seconds=4.0)[:6]
    new = [desc.compute(w.joints, w.confidence, w.fps) for w in windows]
    monkeypatch.setattr(desc, "_kernels", lambda fps: ("dense", fps))
    monkeypatch.setattr(desc, "_apply", lambda f, name, x, bad: _dense_apply(_dense(len(x), f[1]), name, x, bad))
    old = [desc.compute(w.joints, w.confidence, w.fps) for w in windows]
    for a, b in zip(new, old):
        np.testing.assert_allclose(desc.as_vector(a), desc.as_vector(b), rtol=1e-6, equal_nan=True)


def test_a_long_window_takes_memory_linear_in_its_length():
    T = 3000   # the dense matrices took 6 x T^2 x 8 bytes = 430 MB here
    w = synthetic_windows(bodies=1, seconds=4.0)[0]
    joints = np.resize(w.joints, (T, *w.joints.shape[1:]))
    conf = np.resize(w.confidence, (T, w.confidence.shape[1]))
    tracemalloc.start()
    try:
        d = desc.compute(joints, conf, w.fps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d["jerk"].valid
    assert peak < 60 * joints.nbytes * 2, f"peak {peak / 1e6:.0f} MB for a {joints.nbytes * 2 / 1e6:.1f} MB window"
