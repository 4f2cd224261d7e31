"""Reading one source into windows: the source, the ``Windower``, and an .npz cache for files.

``read`` yields every readable window of a source (``joints [T, 17, 3]``, ``confidence [T, 17]``,
body, time span, frames of real motion) and, when asked, each body's label timeline from the
frames (synthetic data). A body's stretch shorter than the window gives one window padded by
reflection (``capture.windowing``), so every clip counts; a window the model cannot read (too few
confident frames, under ``MIN_REAL_SECONDS`` of real motion) is left out with its reason in
``unreadable``.
``cached_read`` keeps a file's windows as .npz keyed by its path, size, mtime, URI options and
the window settings, so the 174 Bandai files are parsed once, not on every run.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bodytalk.capture.source import create
from bodytalk.capture.windowing import Window, WindowConfig, Windower
from bodytalk.model.skeleton.features import InsufficientData, WindowInput
from bodytalk.train.labels import Timeline

CACHE_VERSION = 2  # bump when the reading or windowing changes what a cached file holds


@dataclass
class RawWindows:
    """Windows read from one source before labelling."""
    layout: str
    joints: list[np.ndarray] = field(default_factory=list)
    confidence: list[np.ndarray] = field(default_factory=list)
    body: list[int] = field(default_factory=list)
    span: list[tuple[float, float]] = field(default_factory=list)
    real_frames: list[int] = field(default_factory=list)        # T unless the window is padded
    unreadable: list[str] = field(default_factory=list)         # "body N: reason" of each left-out window
    timelines: dict[int, Timeline] = field(default_factory=dict)  # from frame labels
    t0: float | None = None

    def add(self, windows: list[Window], fps: float) -> None:
        for w in windows:
            try:
                WindowInput(w.joints, w.confidence, fps, real_frames=w.real_frames).check()
            except InsufficientData as err:  # tracking lost, or a glimpse too short to read
                self.unreadable.append(f"body {w.body}: {err}")
                continue
            self.joints.append(w.joints)
            self.confidence.append(w.confidence)
            self.body.append(w.body)
            self.span.append((w.t_start, w.t_end))
            self.real_frames.append(w.real_frames or len(w.joints))


def read(uri: str, cfg: WindowConfig, label_key: str | None) -> RawWindows:
    """All windows of one source (``label_key``: record per-body label timelines from frames)."""
    with create(uri) as src:
        raw, windower = RawWindows(layout=src.layout.id), Windower(cfg)
        for frame in src.frames():
            raw.t0 = frame.t if raw.t0 is None else raw.t0
            uj, uc = src.layout.to_unified(frame.joints, frame.confidence)
            if label_key is not None:
                for body in frame.body_ids.tolist():
                    value = frame.labels.get(body, {}).get(label_key)
                    raw.timelines.setdefault(body, Timeline()).add(frame.t, value)
            raw.add(windower.push(frame.t, frame.body_ids, uj, uc), cfg.fps)
        raw.add(windower.flush(), cfg.fps)
    return raw


def cached_read(path: Path, uri: str, cfg: WindowConfig, cache: Path) -> RawWindows:
    """``read`` of a file, through the cache folder (written atomically: safe for parallel ranks)."""
    stat = path.stat()
    key = json.dumps([CACHE_VERSION, str(path.resolve()), stat.st_size, stat.st_mtime_ns, uri,
                      cfg.window, cfg.hop, cfg.fps, cfg.max_gap])
    file = cache / f"{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if file.is_file():
        with np.load(file) as z:
            t = len(z["body"])
            return RawWindows(str(z["layout"]), list(z["joints"]), list(z["confidence"]), z["body"].tolist(),
                              [tuple(s) for s in z["span"].reshape(t, 2)], z["real_frames"].tolist(),
                              z["unreadable"].tolist())
    raw = read(uri, cfg, None)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp.npz")
    shape = (0, cfg.length, 17)
    np.savez(tmp, layout=raw.layout, body=np.array(raw.body, np.int64), span=np.array(raw.span, np.float64),
             real_frames=np.array(raw.real_frames, np.int64), unreadable=np.array(raw.unreadable, dtype=str),
             joints=np.stack(raw.joints) if raw.joints else np.zeros(shape + (3,), np.float32),
             confidence=np.stack(raw.confidence) if raw.confidence else np.zeros(shape, np.float32))
    os.replace(tmp, file)
    return raw
