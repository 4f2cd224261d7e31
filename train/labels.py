"""Where a dataset's labels come from: per-file labels (JSON sidecars, a CSV index, folder names)
and time-interval labels for streams (a recorded session's label file).

Per-file labels carry the file's other fields as *groups* for splitting (Bandai's sidecar
``{"content": 6, "style": 11}`` labelled by ``style`` keeps ``content`` as a group). Integer ids
are named through the dataset's ``cfg/<field>_label.txt`` (one name per line, line = id), looked
for beside the files and one folder up; a prefix shared by every name there (``dataset-1_``) is
dropped, so ids read as ``happy``, ``bow``.
"""
from __future__ import annotations

import bisect
import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path


class LabelError(ValueError):
    """Labels missing, unreadable or inconsistent; the message names the files."""


@dataclass(frozen=True)
class FileLabel:
    label: str
    groups: dict[str, str] = field(default_factory=dict)


def _names(files: list[Path], limit: int = 8) -> str:
    shown = ", ".join(str(f) for f in files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def id_names(root: Path, key: str) -> list[str] | None:
    """Names for the integer ids of ``key`` from ``cfg/<key>_label.txt`` near ``root``."""
    for folder in (root, root.parent):
        path = folder / "cfg" / f"{key}_label.txt"
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            prefix = os.path.commonprefix(names) if len(names) > 1 else ""
            cut = max(prefix.rfind("_"), prefix.rfind("-")) + 1
            return [n[cut:] for n in names]
    return None


class _Namer:
    """Field value -> name (ids through the cfg files, strings as they are)."""

    def __init__(self, root: Path) -> None:
        self.root, self.tables = root, {}

    def __call__(self, key: str, value, where: Path) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise LabelError(f"{where}: {key} = {value!r} is neither a name nor an integer id")
        if isinstance(value, str):
            return value
        if key not in self.tables:
            self.tables[key] = id_names(self.root, key)
        table = self.tables[key]
        if table is None:
            raise LabelError(f"{where}: {key} is an id ({value}) but no cfg/{key}_label.txt names the ids "
                             f"(looked in {self.root} and {self.root.parent})")
        if not 0 <= value < len(table):
            raise LabelError(f"{where}: {key} id {value} is outside cfg/{key}_label.txt ({len(table)} names)")
        return table[value]


def _from_sidecars(files: list[Path], root: Path, key: str) -> dict[Path, FileLabel]:
    namer, out, missing = _Namer(root), {}, []
    for path in files:
        side = path.with_suffix(".json")
        try:
            doc = json.loads(side.read_text())
        except FileNotFoundError:
            missing.append(path)
            continue
        except json.JSONDecodeError as err:
            raise LabelError(f"{side}: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or key not in doc:
            missing.append(path)
            continue
        groups = {k: namer(k, v, side) for k, v in doc.items() if k != key}
        out[path] = FileLabel(namer(key, doc[key], side), groups)
    if missing:
        raise LabelError(f"{len(missing)} file(s) have no {key!r} label (expected a JSON sidecar "
                         f"NAME.json holding {{{key!r}: ...}}): {_names(missing)}")
    return out


def _from_index(files: list[Path], root: Path, key: str, index: Path) -> dict[Path, FileLabel]:
    """A CSV with a ``file`` column (path relative to the dataset folder, or a bare file name)."""
    with index.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "file" not in rows[0] or key not in rows[0]:
        raise LabelError(f"{index}: needs a header with 'file' and {key!r} columns")
    by_name = {row["file"]: row for row in rows}
    namer, out, missing = _Namer(root), {}, []
    for path in files:
        row = by_name.get(path.relative_to(root).as_posix()) or by_name.get(path.name)
        if row is None or not row[key]:
            missing.append(path)
            continue
        out[path] = FileLabel(namer(key, row[key], index),
                              {k: v for k, v in row.items() if k not in ("file", key) and v})
    if missing:
        raise LabelError(f"{len(missing)} file(s) have no {key!r} row in {index}: {_names(missing)}")
    return out


def file_labels(files: list[Path], root: Path, key: str, source: str | None) -> dict[Path, FileLabel]:
    """Labels of ``files`` under ``root``: ``source`` None = JSON sidecars, ``"folder"`` = each
    file's folder name, else a CSV index (relative to ``root``). Raises naming every unlabelled file."""
    if source is None:
        return _from_sidecars(files, root, key)
    if source == "folder":
        return {f: FileLabel(f.parent.name) for f in files}
    index = Path(source) if Path(source).is_absolute() else root / source
    if not index.is_file():
        raise LabelError(f"label index {index} does not exist")
    return _from_index(files, root, key, index)


class Timeline:
    """Labels over time for one stream: ``label_at`` a window, or None when it changes inside."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.values: list[str | None] = []

    def add(self, t: float, value: str | None) -> None:
        """The label from time ``t`` on (calls in time order; repeats are ignored)."""
        if not self.values or self.values[-1] != value:
            self.times.append(t)
            self.values.append(value)

    def segment(self, t_start: float, t_end: float) -> tuple[int, str] | None:
        """(segment index, label) when one label covers ``[t_start, t_end]``, else None."""
        i = bisect.bisect_right(self.times, t_start) - 1
        if i < 0 or bisect.bisect_right(self.times, t_end) - 1 != i or self.values[i] is None:
            return None
        return i, self.values[i]


def interval_timelines(path: Path, key: str) -> dict[int | None, Timeline]:
    """A stream's label file: CSV ``start,end,<key>[,body]`` in seconds from the stream's first
    frame; rows without ``body`` apply to every body (key None)."""
    if not path.is_file():
        raise LabelError(f"label file {path} does not exist")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"start", "end", key} <= set(rows[0]):
        raise LabelError(f"{path}: needs a header with start, end and {key!r} columns (seconds from "
                         "the first frame)")
    spans: dict[int | None, list[tuple[float, float, str]]] = {}
    for n, row in enumerate(rows, start=2):
        try:
            start, end = float(row["start"]), float(row["end"])
            body = int(row["body"]) if row.get("body") else None
        except ValueError:
            raise LabelError(f"{path}:{n}: start/end must be seconds and body an integer") from None
        if not end > start or not row[key]:
            raise LabelError(f"{path}:{n}: needs end > start and a {key}")
        spans.setdefault(body, []).append((start, end, row[key]))
    out = {}
    for body, items in spans.items():
        timeline, last_end = Timeline(), -float("inf")
        for start, end, label in sorted(items):
            if start < last_end:
                raise LabelError(f"{path}: intervals overlap at {start} s (body {body})")
            timeline.add(start, label)
            timeline.add(end, None)
            last_end = end
        out[body] = timeline
    return out
