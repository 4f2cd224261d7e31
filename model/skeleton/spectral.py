"""Tempo and tremor: the frequency content of evenly spaced joint signals (pure numpy).

``tempo``: the dominant period of several signals pooled, by their unbiased autocorrelation (more
precise than a 2 s FFT's 0.5 Hz bins), with its peak height as the confidence. ``tremor``: RMS
amplitude of wrist motion in the 5-12 Hz band by Parseval, discounted when the band holds a small
share of the motion's energy (then it is the sharp edges of a large movement, not a tremor).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

MIN_RHYTHM_STD = 0.01         # m; less periodic-signal motion than this has no tempo
RHYTHM_MIN_CONFIDENCE = 0.5   # autocorrelation peak needed to report a tempo
MAX_TEMPO_HZ = 4.0            # faster oscillation is tremor, not tempo
TREMOR_BAND_HZ = (5.0, 12.0)  # fast waving reaches 4 Hz; tremor sits above
TREMOR_MIN_SHARE = 0.1        # of wrist motion energy in the tremor band for it to count fully


def filled(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``x [T, K, 3]`` with invalid frames of each joint linearly interpolated between its nearest
    valid frames (held at the ends); ``ok [T, K]``, at least one valid frame per joint."""
    if ok.all():
        return x
    T = len(x)
    t = np.arange(T)[:, None]                                    # [T, 1]
    prev = np.maximum.accumulate(np.where(ok, t, -1), axis=0)    # [T, K] last valid frame at or before
    nxt = np.minimum.accumulate(np.where(ok, t, T)[::-1], axis=0)[::-1]   # first valid at or after
    prev, nxt = np.where(prev < 0, nxt, prev), np.where(nxt >= T, prev, nxt)
    w = np.where(nxt > prev, (t - prev) / np.maximum(nxt - prev, 1), 0.0)[..., None]   # [T, K, 1]
    k = np.arange(x.shape[1])
    return (1 - w) * x[prev, k] + w * x[nxt, k]


@lru_cache(maxsize=16)
def _ramp(T: int) -> np.ndarray:
    """``[T]`` centred time ramp scaled to unit norm (the detrending regressor)."""
    t = np.linspace(-1.0, 1.0, T)
    return t / max(np.linalg.norm(t), 1e-12)


@lru_cache(maxsize=16)
def _hann(T: int) -> np.ndarray:
    return np.hanning(T)


def detrended(s: np.ndarray) -> np.ndarray:
    """Least-squares line removed from each column of ``s [T, S]``."""
    t = _ramp(len(s))
    return s - s.mean(axis=0) - np.outer(t, t @ s)


def tremor(w: np.ndarray, fps: float) -> float:
    """Mean over joints of the tremor-band RMS amplitude (metres) of ``w [T, K, 3]`` (evenly spaced)."""
    T = len(w)
    hann = _hann(T)
    power = np.abs(np.fft.rfft(detrended(w.reshape(T, -1)) * hann[:, None], axis=0)) ** 2
    power = power.reshape(len(power), -1, 3).sum(axis=2)         # [F, K]
    f = np.fft.rfftfreq(T, 1.0 / fps)
    band = (f >= TREMOR_BAND_HZ[0]) & (f <= TREMOR_BAND_HZ[1]) & (f < fps / 2)
    # Parseval for a one-sided spectrum, undoing the Hann window's loss of energy.
    amplitude = np.sqrt(2 * power[band].sum(axis=0) / T ** 2 / np.mean(hann ** 2))   # [K] RMS
    share = power[band].sum(axis=0) / np.maximum(power[1:].sum(axis=0), 1e-12)
    return float((amplitude * np.minimum(share / TREMOR_MIN_SHARE, 1.0)).mean())


def tempo(s: np.ndarray, fps: float) -> tuple[float, float]:
    """Dominant period of detrended signals ``s [T, S]`` by their pooled unbiased autocorrelation.

    Returns (frequency Hz, peak autocorrelation in [0, 1]); (0, 0) when there is no clear rhythm.
    """
    T = len(s)
    if s.std(axis=0).max() < MIN_RHYTHM_STD:
        return 0.0, 0.0
    spec = np.fft.rfft(s, n=2 * T, axis=0)
    acf = np.fft.irfft((np.abs(spec) ** 2).sum(axis=1), n=2 * T)[:T] / (T - np.arange(T))
    rho = acf / acf[0]                                           # [T]
    lo, hi = max(2, int(math.ceil(fps / MAX_TEMPO_HZ))), min(T - 2, (2 * T) // 3)
    lags = np.arange(lo, hi + 1)
    peaks = lags[(rho[lags] > rho[lags - 1]) & (rho[lags] >= rho[lags + 1])]
    if len(peaks) == 0:
        return 0.0, 0.0
    best = float(rho[peaks].max())
    if best < RHYTHM_MIN_CONFIDENCE:
        return 0.0, max(best, 0.0)
    lag = int(peaks[rho[peaks] >= 0.9 * best][0])                # first strong peak, not a multiple
    conf = min(float(rho[lag]), 1.0)
    y0, y1, y2 = rho[lag - 1], rho[lag], rho[lag + 1]            # parabolic refinement of the lag
    denom = y0 - 2 * y1 + y2
    shift = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
    return float(fps / (lag + shift)), conf
