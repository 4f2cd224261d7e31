"""Dataset specs -> labelled windows of the unified skeleton, with clip ids and groups for splitting.

A dataset is a source URI plus where its labels come from::

    synthetic:?bodies=4&duration=60&hold=10&seed=1     labels in the frames (label_key emotion)
    bvh:../shared/data/bandai-namco-ds1/data           every .bvh below the folder, JSON sidecars
    kinect-csv:DIR, ntu:DIR, c3d:DIR                   idem (.csv, .skeleton, .c3d)
    session:take.mcap  + labels: take_labels.csv       start,end,<label_key>[,body] intervals

Every clip is read through its source and the ``Windower`` (2 s windows every 0.5 s on a 30 fps
grid) into unified ``joints [T, 17, 3]`` + ``confidence [T, 17]``. A *clip* is a file's body, or
one body's stretch of a stream under one label; windows whose label changes inside are dropped,
so no window mixes two labels. File windows are cached as .npz keyed by path, size and mtime.
Every clip counts: a clip shorter than the window gives one window padded by reflection in time
(``WindowSet.real_frames`` < T), trained and scored like the others and counted as padded; a clip
with no readable window at all is named in a warning, with the reason.

Everything that can be wrong with the data is checked here, before training: files without
labels, unknown class names, files whose layout has no unified mapping (all named at once).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bodytalk.capture.source import SCHEMES, SourceError, create, parse_uri
from bodytalk.capture.windowing import WindowConfig
from bodytalk.model.llm.weights import cache_root
from bodytalk.train import splits
from bodytalk.train.config import strict
from bodytalk.train.labels import FileLabel, LabelError, file_labels, interval_timelines
from bodytalk.train.readers import cached_read, read
from bodytalk.train.splits import Split, SplitConfig
from bodytalk.train.windowset import Clip, WindowSet

log = logging.getLogger("bodytalk.data")
FILE_SUFFIX = {"bvh": ".bvh", "kinect-csv": ".csv", "ntu": ".skeleton", "c3d": ".c3d"}


class DatasetError(ValueError):
    """Data that cannot train; the message names the datasets, files and labels involved."""


def require_group(clips: Sequence[Clip], group: str, option: str) -> None:
    """One line naming the groups the clips do have when some lack ``group`` (``option`` set it)."""
    if missing := sorted(c.id for c in clips if group not in c.groups):
        known = sorted({k for c in clips for k in c.groups})
        raise DatasetError(f"{option} '{group}' is not a group of {len(missing)} clip(s), e.g. {missing[0]}; "
                           f"the clips have: {', '.join(known) or 'no groups'}")


def check_uri(uri: str) -> None:
    """Refuse (ValueError, one line) a URI that is no dataset: an unknown scheme, or a source that
    never ends (a live sensor, ``synthetic:`` without ``duration``), with how to bound it."""
    try:
        scheme = parse_uri(uri)[0]
        endless = create(uri).endless() if scheme in SCHEMES else None
    except SourceError as err:
        raise ValueError(str(err)) from None
    if endless:
        raise ValueError(f"dataset {uri} never ends: {endless}")
    if scheme not in FILE_SUFFIX and scheme not in ("synthetic", "session"):
        raise ValueError(f"dataset {uri}: scheme {scheme!r} is not a dataset; use one of "
                         + ", ".join([*FILE_SUFFIX, "synthetic", "session"]))


@strict
@dataclass(frozen=True)
class DatasetSpec:
    uri: str
    label_key: str = "emotion"
    # None: frame labels (synthetic) or JSON sidecars (files); "folder": each file's folder name; or a
    # CSV (relative paths from the dataset folder): an index of files, or a session's intervals
    labels: str | None = None
    classes: tuple[str, ...] | None = None  # keep only these labels (the dataset's own names)
    rename: dict[str, str] = field(default_factory=dict)  # dataset name -> model label
    name: str | None = None     # prefix of clip ids (default: the folder or scheme)
    # Training-only classes (the dataset's own names): the pre-training stage learns them beside the
    # model's labels, then drops them from its head; held-out scoring, the later stages and serving
    # never see them (``load(..., auxiliary=True)``).
    auxiliary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_uri(self.uri)
        scheme = parse_uri(self.uri)[0]
        if scheme == "session" and self.labels is None:
            raise ValueError(f"dataset {self.uri}: a session needs `labels:` (a CSV of start,end,"
                             f"{self.label_key} intervals)")
        if self.classes is not None and not self.classes:
            raise ValueError(f"dataset {self.uri}: classes is empty; leave it out to keep every label")
        if self.auxiliary and self.classes is None:
            raise ValueError(f"dataset {self.uri}: auxiliary classes need `classes` (the labels the model keeps)")
        if both := sorted(set(self.auxiliary) & set(self.classes or ())):
            raise ValueError(f"dataset {self.uri}: {', '.join(both)} cannot be both in classes and auxiliary")

    @property
    def auxiliary_labels(self) -> set[str]:
        """The model-side names of the auxiliary classes."""
        return {self.rename.get(a, a) for a in self.auxiliary}

    @property
    def key(self) -> str:
        scheme, target, _ = parse_uri(self.uri)
        return self.name or Path(target).stem or scheme


@strict
@dataclass(frozen=True)
class DataConfig:
    datasets: tuple[DatasetSpec, ...]
    labels: tuple[str, ...] | None = None  # the model's label order (default: sorted labels found)
    window: float = 2.0                   # seconds
    hop: float = 0.5                      # seconds
    train_hop: float | None = None        # seconds between training windows (None: hop); held-out keep hop
    fps: float = 30.0                     # window grid rate
    split: SplitConfig = field(default_factory=SplitConfig)
    cache: str | None = None              # window cache folder (default: <bodytalk cache>/windows)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("data.datasets is empty: name at least one dataset URI")
        names = [d.key for d in self.datasets]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"datasets share the name(s) {dup}: give each a distinct `name:`")
        WindowConfig(self.window, self.hop, self.fps)  # validates
        if self.labels and (both := sorted(set(self.labels) - set(self.served(self.labels)))):
            raise ValueError(f"data.labels names auxiliary class(es) {', '.join(both)}: a model never "
                             "serves them; leave them out of data.labels")
        if self.train_hop is not None:
            WindowConfig(self.window, self.train_hop, self.fps)

    @property
    def window_config(self) -> WindowConfig:
        return WindowConfig(self.window, self.hop, self.fps)

    def served(self, labels: Sequence[str]) -> tuple[str, ...]:
        """``labels`` without the datasets' auxiliary classes (the labels a model keeps), in order."""
        aux = set().union(*(d.auxiliary_labels for d in self.datasets))
        return tuple(lab for lab in labels if lab not in aux)


def _files(spec: DatasetSpec) -> tuple[Path, list[Path]]:
    scheme, target, _ = parse_uri(spec.uri)
    path = Path(target).expanduser()
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise DatasetError(f"dataset {spec.uri}: {path} is neither a file nor a folder")
    files = sorted(path.rglob(f"*{FILE_SUFFIX[scheme]}"))
    if not files:
        raise DatasetError(f"dataset {spec.uri}: no {FILE_SUFFIX[scheme]} files below {path}")
    return path, files


def _file_uri(spec: DatasetSpec, path: Path) -> str:
    scheme, _, options = parse_uri(spec.uri)
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{scheme}:{path}" + (f"?{query}" if query else "")


@dataclass
class _Labelled:
    clips: list[Clip] = field(default_factory=list)
    windows: list[tuple[int, np.ndarray, np.ndarray, int]] = field(default_factory=list)  # clip, joints, conf, real
    unreadable: list[str] = field(default_factory=list)  # "<file>: <reason>" of clips that gave no window


def _load_files(spec: DatasetSpec, cfg: DataConfig, cache: Path, progress: bool, auxiliary: bool) -> _Labelled:
    root, files = _files(spec)
    try:
        labels: dict[Path, FileLabel] = file_labels(files, root, spec.label_key, spec.labels)
    except LabelError as err:
        raise DatasetError(f"dataset {spec.key}: {err}") from None
    _check_classes(spec, {lab.label for lab in labels.values()})
    out, errors = _Labelled(), []
    for path in tqdm(files, desc=f"reading {spec.key}", unit="file", disable=not progress, leave=False):
        if (label := _keep(spec, labels[path].label, auxiliary)) is None:
            continue
        try:
            raw = cached_read(path, _file_uri(spec, path), cfg.window_config, cache)
        except (SourceError, ValueError, KeyError) as err:  # incl. a rig without unified mapping
            errors.append(str(err) if str(path) in str(err) else f"{path}: {err}")
            continue
        bodies = sorted(set(raw.body))
        if not bodies:
            out.unreadable.append(f"{path.name}: {raw.unreadable[0] if raw.unreadable else 'no frames'}")
        for body in bodies:
            suffix = f"#b{body}" if len(bodies) > 1 else ""
            clip = Clip(f"{spec.key}/{path.relative_to(root).as_posix()}{suffix}", label, raw.layout, spec.key,
                        dict(labels[path].groups))
            out.clips.append(clip)
            out.windows += [(len(out.clips) - 1, j, c, r) for j, c, b, r in
                            zip(raw.joints, raw.confidence, raw.body, raw.real_frames) if b == body]
    if errors:
        raise DatasetError(f"dataset {spec.key}: {len(errors)} file(s) could not be read:\n  " + "\n  ".join(errors))
    return out


def _load_stream(spec: DatasetSpec, cfg: DataConfig, auxiliary: bool) -> _Labelled:
    _, target, _ = parse_uri(spec.uri)
    try:
        raw = read(spec.uri, cfg.window_config, spec.label_key if spec.labels is None else None)
        if spec.labels is not None:
            labels = Path(spec.labels).expanduser()
            timelines = interval_timelines(labels if labels.is_absolute() else Path(target).parent / labels,
                                           spec.label_key)
            raw.timelines = {b: timelines.get(b) or timelines.get(None) for b in set(raw.body)}
    except (SourceError, LabelError) as err:
        raise DatasetError(f"dataset {spec.key}: {err}") from None
    t0 = raw.t0 if spec.labels is not None else 0.0  # interval files count from the first frame
    found = {v for tl in raw.timelines.values() if tl for v in tl.values if v is not None}
    _check_classes(spec, found)
    out, index = _Labelled(), {}
    for j, c, body, (t_start, t_end), real in zip(raw.joints, raw.confidence, raw.body, raw.span, raw.real_frames):
        timeline = raw.timelines.get(body)
        seg = timeline.segment(t_start - t0, t_end - t0) if timeline else None
        if seg is None or (label := _keep(spec, seg[1], auxiliary)) is None:
            continue  # unlabelled, or the label changes inside the window
        if (body, seg[0]) not in index:
            index[body, seg[0]] = len(out.clips)
            out.clips.append(Clip(f"{spec.key}/b{body}/s{seg[0]}", label, raw.layout, spec.key, {"body": str(body)}))
        out.windows.append((index[body, seg[0]], j, c, real))
    return out


def _check_classes(spec: DatasetSpec, found: set[str]) -> None:
    wanted = set(spec.classes or ()) | set(spec.rename) | set(spec.auxiliary)
    if unknown := sorted(wanted - found):
        raise DatasetError(f"dataset {spec.key}: unknown class name(s) {', '.join(unknown)} in classes/rename; "
                           f"its {spec.label_key} labels are: {', '.join(sorted(found)) or 'none'}")


def _keep(spec: DatasetSpec, label: str, auxiliary: bool = False) -> str | None:
    """The model label of a dataset label, or None when the class subset leaves it out."""
    if spec.classes is not None and label not in spec.classes and not (auxiliary and label in spec.auxiliary):
        return None
    return spec.rename.get(label, label)


def load(cfg: DataConfig, progress: bool = True, auxiliary: bool = False) -> WindowSet:
    """Read, label and check every dataset of ``cfg``; with ``auxiliary`` its auxiliary classes too
    (labels: ``cfg.labels`` then the auxiliary ones, or every label found, sorted)."""
    cache = Path(cfg.cache).expanduser() if cfg.cache else cache_root() / "windows"
    parts = []
    for spec in cfg.datasets:
        scheme = parse_uri(spec.uri)[0]
        part = (_load_files(spec, cfg, cache, progress, auxiliary) if scheme in FILE_SUFFIX
                else _load_stream(spec, cfg, auxiliary))
        if not part.windows:
            raise DatasetError(f"dataset {spec.key} ({spec.uri}) yielded no labelled windows of {cfg.window} s")
        parts.append(part)
    found = sorted({c.label for p in parts for c in p.clips})
    labels = tuple(cfg.labels) if cfg.labels else tuple(found)
    if auxiliary and cfg.labels:   # data.labels names no auxiliary class (DataConfig checks)
        labels += tuple(sorted(set(found) - set(cfg.served(found))))
    if stray := sorted(set(found) - set(labels)):
        raise DatasetError(f"label(s) {', '.join(stray)} are not in data.labels ({', '.join(labels)}); "
                           "add them, rename them or leave them out with a dataset's classes")
    clips = [c for p in parts for c in p.clips]
    offsets = np.cumsum([0] + [len(p.clips) for p in parts])
    if unreadable := [f"{spec.key}/{u}" for spec, p in zip(cfg.datasets, parts) for u in p.unreadable]:
        log.warning("%d clip(s) gave no readable window and are left out: %s", len(unreadable),
                    "; ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else ""))
    items = [(off + i, j, c, r) for off, p in zip(offsets, parts) for i, j, c, r in p.windows]
    clip = np.array([i for i, _, _, _ in items], dtype=np.int64)
    index = {lab: i for i, lab in enumerate(labels)}
    return WindowSet(np.stack([j for _, j, _, _ in items]).astype(np.float32),
                     np.stack([c for _, _, c, _ in items]).astype(np.float32),
                     np.array([index[clips[i].label] for i in clip], dtype=np.int64), clip,
                     tuple(clips), labels, cfg.fps, np.array([r for *_, r in items], dtype=np.int64))


def load_split(cfg: DataConfig, progress: bool = True,
               auxiliary: bool = False) -> tuple[WindowSet, Split, WindowSet, WindowSet]:
    """``load`` + the split a single-run stage uses, checked: (all, split, train, test). With
    ``train_hop`` the training clips are cut again, their windows that much apart (more phases of the
    same motion to learn from); the held-out windows, and ``all``, keep ``hop``. With ``auxiliary``
    the auxiliary classes' clips are split with the others (a left-out group leaves out all its
    clips) and join the training side only: the held-out side keeps the model's labels."""
    windows = load(cfg, progress, auxiliary)
    split = splits.select(windows.clips, cfg.split)
    if auxiliary:
        kept, held_out = set(cfg.served(windows.labels)), set(split.test)
        split = dataclasses.replace(split, test=tuple(c.id for c in windows.clips
                                                     if c.id in held_out and c.label in kept))
    splits.check(split, windows.clips, windows.counts())
    train, test = windows.split(split)
    if cfg.train_hop is not None and cfg.train_hop != cfg.hop:
        dense = load(dataclasses.replace(cfg, hop=cfg.train_hop, train_hop=None), progress, auxiliary)
        if [c.id for c in dense.clips] != [c.id for c in windows.clips]:
            raise DatasetError("the data changed between two reads (the clips differ): run again")
        train = dense.take(split.train)
    return windows, split, train, test


def load_split_ranked(cfg: DataConfig, info, progress: bool = True,
                      auxiliary: bool = False) -> tuple[WindowSet, Split, WindowSet, WindowSet]:
    """``load_split`` under DDP: rank 0 reads the data (filling the window cache) while the other
    ranks wait at the barrier, then they read the cache. ``info`` is the run's ``DistInfo``."""
    if info.main:
        out = load_split(cfg, progress, auxiliary)
    info.barrier()
    if not info.main:
        out = load_split(cfg, False, auxiliary)
    return out
