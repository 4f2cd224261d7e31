"""``c3d:PATH?map=MAP`` -- optical marker data (C3D) through ``ezc3d``, with a marker -> joint map.

C3D holds markers, not joints, so the user says which markers make each unified joint (the mean
of the listed markers), either as a JSON file ``{"pelvis": ["LASI", "RASI", "LPSI", "RPSI"], ...}``
(a list or a ``"A+B"`` string per joint) or inline: ``map=pelvis:LASI+RASI,head:LFHD+RFHD,...``.
Every unified joint needs an entry. Options:

- ``up=z|y``: the file's up axis; default ``z``, as most C3D systems (Vicon, Qualisys) write.
- ``units=mm|cm|m``: overrides the file's ``POINT:UNITS``.

A joint is missing in a frame when any of its markers is (NaN, or residual < 0): it gets
confidence 0 and holds its last valid position (its first valid one before that), never zero.
The layout (id ``c3d``) is the unified joint set itself. One body, id 0; fps from ``POINT:RATE``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from bodytalk.capture import layouts
from bodytalk.capture.layouts import UNIFIED_JOINTS, UNIFIED_PARENTS, Layout, one_to_one
from bodytalk.capture.source import Frame, Source, SourceError

UNITS = {"mm": 0.001, "cm": 0.01, "m": 1.0}
UP_AXES = {"z": layouts.Z_UP_TO_Y_UP, "y": layouts.IDENTITY}
MAP_HELP = ("give map=FILE.json ({\"pelvis\": [\"LASI\", \"RASI\"], ...}) or "
            "map=pelvis:LASI+RASI,head:LFHD+RFHD,... covering all of: " + ", ".join(UNIFIED_JOINTS))


def parse_marker_map(spec: str) -> dict[str, list[str]]:
    """A map option (JSON file path or inline text) -> unified joint -> marker labels."""
    if spec.lower().endswith(".json"):
        try:
            raw = json.loads(Path(spec).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SourceError(f"c3d: cannot read the marker map {spec}: {err}") from None
        if not isinstance(raw, dict):
            raise SourceError(f"c3d: marker map {spec} must be a JSON object; {MAP_HELP}")
        items = [(k, v if isinstance(v, str) else "+".join(map(str, v))) for k, v in raw.items()]
    else:
        items = [entry.partition(":")[::2] for entry in spec.split(",") if entry.strip()]
    # "+" arrives as a space when the map came through a URI query string
    table = {joint.strip(): [m for m in re.split(r"[+\s]+", markers) if m] for joint, markers in items}
    unknown = sorted(set(table) - set(UNIFIED_JOINTS))
    missing = [j for j in UNIFIED_JOINTS if not table.get(j)]
    problems = ([f"names unknown joints {unknown}"] if unknown else []) + \
        ([f"has no markers for {missing}"] if missing else [])
    if problems:
        raise SourceError("c3d: marker map " + "; ".join(problems) + f"; {MAP_HELP}")
    return table


def hold_last_valid(points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``points [F, J, 3]``, ``valid [F, J]`` -> invalid entries replaced by the last valid one
    (the first valid one before any), per joint; a joint never valid is left as it is."""
    frames = np.arange(len(points))[:, None]
    last = np.maximum.accumulate(np.where(valid, frames, -1), axis=0)   # [F, J]
    first = np.where(valid.any(axis=0), valid.argmax(axis=0), 0)        # [J]
    source = np.where(last >= 0, last, first)
    return np.take_along_axis(points, source[..., None], axis=0)


class C3DSource(Source):
    scheme = "c3d"
    help = "C3D marker file via ezc3d (extra 'c3d'); map=FILE.json or map=joint:M1+M2,...; up=z|y"
    example = "c3d:trial01.c3d?map=markers.json&up=z"

    def open(self) -> None:
        try:
            import ezc3d
        except ImportError:
            raise SourceError("c3d sources need the c3d extra: pip install 'bodytalk[c3d]'") from None
        if "map" not in self.options:
            raise SourceError(f"c3d: no marker map; {MAP_HELP}")
        table = parse_marker_map(self.options["map"])
        path = Path(self.target)
        if not path.is_file():
            raise SourceError(f"c3d: no such file: {path} (give the path after 'c3d:')")
        try:
            c3d = ezc3d.c3d(str(path))
        except Exception as err:  # ezc3d raises plain RuntimeError/IOError for unreadable files
            raise SourceError(f"c3d: cannot read {path}: {err}") from None
        point = c3d["parameters"]["POINT"]
        labels = [str(label).strip() for label in point["LABELS"]["value"]]
        columns = {j: self._columns(path, labels, markers) for j, markers in table.items()}

        data = c3d["data"]["points"][:3].transpose(2, 1, 0)                 # [F, N, 3] file units
        residual = c3d["data"]["meta_points"]["residuals"][0].T             # [F, N]
        marker_ok = np.isfinite(data).all(axis=-1) & (residual >= 0)        # [F, N]
        joints = np.stack([data[:, columns[j]].mean(axis=1) for j in UNIFIED_JOINTS], axis=1)
        valid = np.stack([marker_ok[:, columns[j]].all(axis=1) for j in UNIFIED_JOINTS], axis=1)
        if not len(joints):
            raise SourceError(f"c3d: {path} has no frames")

        scale = self._scale(path, point)
        self.fps = float(point["RATE"]["value"][0]) if len(point["RATE"]["value"]) else 0.0
        if not self.fps > 0:
            raise SourceError(f"c3d: {path} has no POINT:RATE (frame rate)")
        up = self.option("up", "z").lower()
        if up not in UP_AXES:
            raise SourceError(f"c3d: option up={up!r}: expected one of {', '.join(UP_AXES)}")
        self.layout = layouts.register(Layout(
            id="c3d", joints=UNIFIED_JOINTS, parents=UNIFIED_PARENTS, units=f"x{scale:g} m",
            axes=f"{up} up", unified=one_to_one({j: j for j in UNIFIED_JOINTS}), scale=scale,
            rotation=UP_AXES[up]))
        # a joint never seen keeps no position at all: 0, marked by its confidence 0
        held = np.nan_to_num(hold_last_valid(joints, valid), nan=0.0, posinf=0.0, neginf=0.0)
        self._joints = self.layout.to_canonical(held)                            # [F, 17, 3] m
        self._conf = valid.astype(np.float32)                                    # [F, 17]

    def frames(self) -> Iterator[Frame]:
        ids = np.zeros(1, dtype=np.int32)
        for i, (joints, conf) in enumerate(zip(self._joints, self._conf)):
            yield Frame(t=i / self.fps, body_ids=ids, joints=joints[None], confidence=conf[None])

    @staticmethod
    def _columns(path: Path, labels: list[str], markers: list[str]) -> list[int]:
        """Marker labels -> point columns; ``LASI`` also finds a subject-prefixed ``Anna:LASI``."""
        bare = [label.split(":")[-1] for label in labels]
        cols, absent = [], []
        for m in markers:
            hits = [i for i, (full, b) in enumerate(zip(labels, bare)) if m in (full, b)]
            if hits:
                cols.append(hits[0])
            else:
                absent.append(m)
        if absent:
            raise SourceError(f"c3d: {path} has no marker(s) {absent}; its markers: "
                              + ", ".join(labels[:60]) + (" ..." if len(labels) > 60 else ""))
        return cols

    def _scale(self, path: Path, point: dict) -> float:
        units = self.options.get("units") or "".join(point.get("UNITS", {}).get("value", [])).strip()
        if units.lower() not in UNITS:
            raise SourceError(f"c3d: {path}: point units {units!r} unknown (POINT:UNITS); "
                              f"give ?units= one of {', '.join(UNITS)}")
        return UNITS[units.lower()]
