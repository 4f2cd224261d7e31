"""Sliding windows per tracked body, driven by capture timestamps.

Each body's samples are resampled onto a regular grid at ``fps`` by linear interpolation between
the two samples around each grid time. A grid point inside a gap longer than 1.5 frame periods
(but at most ``max_gap`` seconds) is filled and flagged ``interpolated``; its confidence is the
lower of the two samples around it. A gap longer than ``max_gap`` restarts that body's window, so
a window never bridges a real disappearance. Low-confidence joints are carried with their
confidence, never zeroed.

Live capture staggers the bodies' windows (``stagger``): bodies that appear together would otherwise
close their windows on the same frame, and a server would get one burst of N windows per hop and
answer the last of them only after reading all N. Each new body's grid starts up to one hop later
(a golden-ratio sequence of phases, so any number of bodies spreads evenly over the hop), which turns
the bursts into a steady stream. Offline reading (``windows_of``) does not stagger.

Every stretch of a body counts. A stretch that ends before it filled one window (a clip shorter
than the window, a body that leaves early, a source that ends, a gap that restarts the window)
gives exactly one window: its real frames, then the same frames reflected in time (0 1 2 3 2 1 0 1
...: the motion plays back and forth, it never freezes) up to the window length, flagged
``padded`` with its ``real_frames``. ``t_end`` is then the time of the last real frame. Whether
a few real frames are enough to read is the model's call (``model.skeleton.features.MIN_REAL_SECONDS``),
not the windower's: a 3-frame glimpse still gives its window, and its reading says why it has none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class WindowConfig:
    window: float = 2.0     # seconds
    hop: float = 0.5        # seconds between window starts
    fps: float = 30.0       # grid rate
    max_gap: float = 0.25   # seconds; longer gaps restart the window
    stagger: bool = False   # spread the bodies' window phases over the hop (live capture)

    def __post_init__(self) -> None:
        if not (self.window > 0 and self.hop > 0 and self.fps > 0 and self.max_gap >= 0):
            raise ValueError(f"window, hop and fps must be > 0, max_gap >= 0: {self}")
        if self.length < 2:
            raise ValueError(f"window {self.window}s at {self.fps} fps is shorter than 2 frames")

    @property
    def length(self) -> int:
        return int(round(self.window * self.fps))

    @property
    def stride(self) -> int:
        return max(1, int(round(self.hop * self.fps)))


@dataclass
class Window:
    """One body's window: ``joints [T, J, 3]``, ``confidence [T, J]``, ``interpolated [T]``."""
    body: int
    seq: int
    t_start: float
    t_end: float
    joints: np.ndarray
    confidence: np.ndarray
    interpolated: np.ndarray
    labels: dict
    real_frames: int | None = None  # frames of real motion when padded; None: all T are real

    @property
    def padded(self) -> bool:
        return self.real_frames is not None


def reflect_index(n: int, length: int) -> np.ndarray:
    """Frame indices ``[length]`` that play ``n`` real frames back and forth: 0 .. n-1, n-2 .. 0, 1 ...
    (one frame repeats: nothing else can be reflected)."""
    if n <= 1:
        return np.zeros(length, dtype=np.int64)
    i = np.arange(length) % (2 * (n - 1))
    return np.where(i < n, i, 2 * (n - 1) - i)


class BodyWindower:
    """Grid buffer of one body."""

    def __init__(self, body: int, cfg: WindowConfig, phase: int = 0) -> None:
        self.body, self.cfg = body, cfg
        self.phase = phase                  # grid points dropped at the start: this body's window phase
        self.seq = 0
        self.restarts = 0
        self._reset()

    def _reset(self) -> None:
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None
        self._grid_t0 = 0.0                 # time of grid point 0
        self._n = 0                         # grid points filled so far
        self._skip = self.phase             # grid points still to drop (from full windows) ...
        self._dropped: list[tuple[np.ndarray, np.ndarray, bool]] = []  # ... kept for a padded one
        self._j: list[np.ndarray] = []      # per grid point [J, 3]
        self._c: list[np.ndarray] = []      # per grid point [J]
        self._interp: list[bool] = []
        self._emitted = False               # this stretch gave a window (else ``flush`` pads one)

    def push(self, t: float, joints: np.ndarray, conf: np.ndarray, labels: dict | None = None) -> list[Window]:
        """Add one sample; return the windows it completes (and, when it restarts the window, the
        padded window of the stretch before the gap)."""
        ended: list[Window] = []
        if self._last is not None and (t - self._last[0] > self.cfg.max_gap or t < self._last[0]):
            self.restarts += 1
            ended = self.flush()
            self._reset()
        self._labels = labels or {}
        dt = 1.0 / self.cfg.fps
        if self._last is None:
            self._grid_t0 = t
            self._append(joints, conf, False)
            self._last = (t, joints, conf)
            return ended + self._emit()
        t_prev, j_prev, c_prev = self._last
        gap = t - t_prev > 1.5 * dt
        # Grid points in (t_prev, t]: interpolate between the two samples.
        while (tg := self._grid_t0 + self._n * dt) <= t + 1e-9:
            a = (tg - t_prev) / (t - t_prev) if t > t_prev else 1.0
            jg = (1 - a) * j_prev + a * joints
            nearest_real = min(tg - t_prev, t - tg) <= 0.5 * dt
            self._append(jg.astype(np.float32), np.minimum(c_prev, conf), gap and not nearest_real)
        self._last = (t, joints, conf)
        return ended + self._emit()

    def flush(self) -> list[Window]:
        """The stretch ended (the body left, the source ended): its one window if it never sent one
        (padded when the stretch is shorter than a window), else nothing. The stretch then counts as
        read (a second flush gives nothing)."""
        if self._emitted:
            return []
        # The whole stretch, with the grid points the phase dropped (they only stagger full windows).
        js, cs, interp = [*zip(*self._dropped)] or [(), (), ()]
        js, cs, interp = [*js, *self._j], [*cs, *self._c], [*interp, *self._interp]
        n = len(js)
        if not n:
            return []
        self._emitted = True
        dt, length = 1.0 / self.cfg.fps, self.cfg.length
        if n >= length:
            # Long enough, but the stagger phase had not let its first window out yet: a whole window
            # of the latest frames, not a padded one.
            idx, real, first = np.arange(n - length, n), None, n - length
        else:
            idx, real, first = reflect_index(n, length), n, 0
        t_start = self._grid_t0 + (self._n - n + first) * dt
        w = Window(body=self.body, seq=self.seq, t_start=t_start, t_end=t_start + (min(n, length) - 1) * dt,
                   joints=np.stack(js)[idx], confidence=np.stack(cs)[idx],
                   interpolated=np.array(interp, dtype=bool)[idx], labels=dict(self._labels),
                   real_frames=real)
        self.seq += 1
        return [w]

    def _append(self, j: np.ndarray, c: np.ndarray, interp: bool) -> None:
        if self._skip:
            self._skip -= 1
            self._n += 1
            self._dropped.append((j, c, interp))
            return
        self._j.append(j)
        self._c.append(c)
        self._interp.append(interp)
        self._n += 1

    def _emit(self) -> list[Window]:
        out = []
        length, stride, dt = self.cfg.length, self.cfg.stride, 1.0 / self.cfg.fps
        while len(self._j) >= length:
            t_start = self._grid_t0 + (self._n - len(self._j)) * dt
            out.append(Window(
                body=self.body, seq=self.seq, t_start=t_start, t_end=t_start + (length - 1) * dt,
                joints=np.stack(self._j[:length]), confidence=np.stack(self._c[:length]),
                interpolated=np.array(self._interp[:length], dtype=bool), labels=dict(self._labels)))
            self.seq += 1
            self._emitted = True
            self._dropped.clear()
            del self._j[:stride], self._c[:stride], self._interp[:stride]
        return out


class Windower:
    """Windows for every body of a source; bodies unseen for ``max_gap`` are forgotten (after their
    padded window, when they left before filling one). Call ``flush`` when the source ends."""

    def __init__(self, cfg: WindowConfig) -> None:
        self.cfg = cfg
        self.bodies: dict[int, BodyWindower] = {}
        self._seen: dict[int, float] = {}
        self._started = 0                   # bodies seen so far (their index picks the phase)

    def _phase(self) -> int:
        """Grid points the next new body drops at its start: 0 without ``stagger``, else the
        golden-ratio sequence over one hop (0, 0.62, 0.24, 0.85, 0.47, ... of the stride)."""
        if not self.cfg.stagger:
            return 0
        self._started += 1
        return int(((self._started - 1) * 0.6180339887498949) % 1.0 * self.cfg.stride)

    def push(self, t: float, body_ids, joints: np.ndarray, conf: np.ndarray,
             labels: dict[int, dict] | None = None) -> list[Window]:
        """One frame: ``joints [B, J, 3]``, ``conf [B, J]`` -> completed windows."""
        out: list[Window] = []
        for i, body in enumerate(int(b) for b in body_ids):
            w = self.bodies.get(body)
            if w is None:
                w = self.bodies[body] = BodyWindower(body, self.cfg, self._phase())
            out.extend(w.push(t, joints[i], conf[i], (labels or {}).get(body)))
            self._seen[body] = t
        for body, seen in list(self._seen.items()):
            if t - seen > self.cfg.max_gap or t < seen:
                out.extend(self.bodies.pop(body).flush())
                del self._seen[body]
        return out

    def flush(self) -> list[Window]:
        """The source ended: the padded window of every body that never filled one; forgets them all."""
        out = [w for b in self.bodies.values() for w in b.flush()]
        self.bodies.clear()
        self._seen.clear()
        return out


def windows_of(src, window: float = 2.0, hop: float = 0.5) -> Iterator[Window]:
    """Every window of an opened source, as fast as it reads (offline analysis, datasets).

    Joints are unified (``src.layout.to_unified``); the source's fps sets the grid. A body whose
    stretch is shorter than the window gives one padded window (module doc).
    """
    windower = Windower(WindowConfig(window, hop, fps=src.fps))
    for frame in src.frames():
        yield from windower.push(frame.t, frame.body_ids,
                                 *src.layout.to_unified(frame.joints, frame.confidence), frame.labels)
    yield from windower.flush()
