"""Reading the numeric text files of the file sources (BVH motion, Kinect CSV, NTU skeletons).

Every error names the file and the 1-based line, so a corrupt recording can be fixed by hand.
The happy path converts whole blocks of lines with numpy; only a failing block is walked line
by line to find the culprit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bodytalk.capture.source import SourceError


def read_lines(path: str | Path, scheme: str) -> list[str]:
    """The file's lines (no line ends); ``SourceError`` if it is missing or not text."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{scheme}: no such file: {path} (give the path after '{scheme}:')")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(f"{scheme}: cannot read {path} as text: {err}") from None


def corrupt(path: str | Path, line: int, what: str) -> SourceError:
    """The error for a bad line: ``FILE:LINE: what``."""
    return SourceError(f"{path}:{line}: {what}")


def numeric_rows(path: str | Path, lines: list[str], first_line: int, width: int,
                 sep: str | None = None) -> np.ndarray:
    """Lines of ``width`` numbers -> ``[len(lines), width]`` float64.

    ``first_line`` is the 1-based line number of ``lines[0]``; ``sep`` None splits on
    whitespace, ``","`` on commas (a trailing separator, as Kinect CSVs write, is allowed).
    """
    rows = [_split(text, sep) for text in lines]
    for i, row in enumerate(rows):
        if len(row) != width:
            raise corrupt(path, first_line + i, f"expected {width} values, found {len(row)}")
    try:
        values = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    for i, row in enumerate(rows):  # slow path: find the first bad line
        for j, token in enumerate(row):
            try:
                ok = np.isfinite(float(token))
            except ValueError:
                ok = False
            if not ok:
                raise corrupt(path, first_line + i, f"value {j + 1} ({token!r}) is not a finite number")
    raise AssertionError("unreachable: numpy rejected rows that parse one by one")


def _split(text: str, sep: str | None) -> list[str]:
    if sep is None:
        return text.split()
    text = text.strip()
    if text.endswith(sep):
        text = text[: -len(sep)]
    return [token.strip() for token in text.split(sep)]
