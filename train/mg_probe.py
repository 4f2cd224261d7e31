"""Micro-gesture probe: fit the learned MG detector (``model/skeleton/mg_learned.py``) on synthetic MG clips
and compare it with the geometric rules (``model/skeleton/mg_rules.py``) on held-out clips, per MG.

    bodytalk train --config mg_probe --out runs/mg_probe
    bodytalk train --config mg_probe --out runs/mg_probe init=runs/pretrain_stb/checkpoint
    bodytalk train --config mg_probe_tiny --out /tmp/mg_tiny          # seconds (tests)

1. Encoder: ``init`` (a pre-training run's checkpoint, e.g. STB) or, without one, an STB
   pre-training run on the training clips first (the ``pretrain`` stage in ``RUN/pretrain/``, its
   data section generated from ``clips`` and the ``pretrain:`` mapping merged over it; the clips'
   emotions are only its probe's labels). It stays frozen from here on.
2. Clips: ``clips.uri`` once per seed; the train seeds fit the head, the test seeds (seen by
   neither the encoder nor the head: checked against the init's recorded datasets) evaluate.
   Windows as live (2 s every 0.5 s), each with the MGs planted in its clip (frame labels ``mgs``).
3. Head: a chunk's target is 1 when a planted MG covers at least ``probe.cover`` of it, 0 when
   none touches it, and left out in between; a window's is 1 when one of its chunks' is, 0 when no
   planted MG touches it. AdamW, full batch, binary cross-entropy; then per MG the thresholds
   that maximise F1 on the training windows (window head) and chunks (chunk head).
4. Evaluation on every test window, detections moved to clip time, events matched by overlap
   (``microgestures.tally``) against the planted MGs that ended inside the clip (detections of
   those cut off by its end are set aside): the rules, the learned head, and the same head
   fitted on an untrained encoder (what pre-training adds).

Writes ``RUN/checkpoint/`` (the init checkpoint with ``mg_head.*`` beside it), ``RUN/results.json``
(per-MG precision / recall / F1 of both detectors) and ``RUN/mg_table.md``.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from bodytalk.capture.source import SourceError, parse_uri
from bodytalk.capture.windowing import WindowConfig
from bodytalk.model import checkpoint
from bodytalk.model.skeleton import mg_learned, mg_rules
from bodytalk.model.encoder import SkeletonEncoder
from bodytalk.model.skeleton.features import WindowInput
from bodytalk.model.skeleton.microgestures import MG, NAMES, MGResult, Tally, tally
from bodytalk.train import config as config_io
from bodytalk.train import pretrain
from bodytalk.train.config import strict
from bodytalk.train.loop import RuntimeConfig, setup
from bodytalk.train.pipeline import merge
from bodytalk.train.readers import read
from bodytalk.train.rundir import RunDir
from bodytalk.train.splits import Split, SplitError


@strict
@dataclass(frozen=True)
class ClipsConfig:
    uri: str = "synthetic:?bodies=1&activity=standing&mg=all&mg_rate=1&duration=60&hold=20"   # no seed
    train_seeds: tuple[int, ...] = tuple(range(10))
    test_seeds: tuple[int, ...] = (100, 101, 102, 103, 104, 105)
    window: float = 2.0
    hop: float = 0.5
    fps: float = 30.0

    def __post_init__(self) -> None:
        try:
            scheme, _, options = parse_uri(self.uri)
        except SourceError as err:
            raise ValueError(str(err)) from None
        if scheme != "synthetic" or "seed" in options or not options.get("mg"):
            raise ValueError(f"clips.uri {self.uri!r}: need a synthetic: URI with mg=... and no seed= "
                             "(each of train_seeds and test_seeds is appended)")
        if not self.train_seeds or not self.test_seeds or set(self.train_seeds) & set(self.test_seeds):
            raise ValueError("clips: train_seeds and test_seeds must be non-empty and disjoint")
        WindowConfig(self.window, self.hop, self.fps)

    def uri_for(self, seed: int) -> str:
        return f"{self.uri}&seed={seed}"


@strict
@dataclass(frozen=True)
class ProbeOptions:
    hidden: int = 0           # 0: linear probe; > 0: one hidden layer this wide
    steps: int = 300          # full-batch AdamW steps
    lr: float = 0.01
    weight_decay: float = 0.01
    cover: float = 0.5        # share of a chunk a planted MG must cover for a positive chunk target
    baseline: bool = True     # also fit and score the head on an untrained encoder

    def __post_init__(self) -> None:
        if self.hidden < 0 or self.steps < 1 or not self.lr > 0 or self.weight_decay < 0 or not 0 < self.cover <= 1:
            raise ValueError(f"probe: need hidden >= 0, steps >= 1, lr > 0, weight_decay >= 0, 0 < cover <= 1: {self}")


@strict
@dataclass(frozen=True)
class Config:
    stage: Literal["mg_probe"]
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    init: str | None = None                  # encoder checkpoint; None: STB pre-training here first
    pretrain: dict[str, Any] = field(default_factory=dict)   # merged over the generated pretrain config
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    seed: int = 0
    out: str = "runs/mg_probe"

    def __post_init__(self) -> None:
        if self.init is None:
            self.pretrain_config(Path(self.out))   # validates the merged pretrain config now

    def pretrain_config(self, out: Path) -> pretrain.Config:
        c = self.clips
        base = {"stage": "pretrain", "seed": self.seed, "out": str(out / "pretrain"),
                "runtime": config_io.to_dict(self.runtime),
                "data": {"window": c.window, "hop": c.hop, "fps": c.fps,
                         "datasets": [{"uri": c.uri_for(s), "name": f"mg-seed{s}"} for s in c.train_seeds]},
                "pretrain": {"recipe": "stb", "augment": {"policy": "mg"}}}
        try:
            return config_io.parse(pretrain.Config, merge(base, self.pretrain), where="pretrain")
        except config_io.ConfigError as err:
            raise ValueError(str(err)) from None


@dataclass
class MGClips:
    """Windows of several clips (one body of one seed each) with the MGs planted in them."""
    windows: list[WindowInput] = field(default_factory=list)
    start: list[float] = field(default_factory=list)     # per window, clip time of its first frame
    clip: list[int] = field(default_factory=list)        # per window, index into ids
    ids: list[str] = field(default_factory=list)         # "<uri>#b<body>"
    planted: list[list[dict]] = field(default_factory=list)   # per clip: {name, t_start, t_end, count}
    end: list[float] = field(default_factory=list)       # per clip, time of the last windowed frame


def read_clips(cfg: ClipsConfig, seeds: tuple[int, ...]) -> MGClips:
    """Every window of the seeds' clips; planted MGs gathered from the frames' ``mgs`` labels."""
    out, wcfg = MGClips(), WindowConfig(cfg.window, cfg.hop, cfg.fps)
    for seed in seeds:
        raw = read(cfg.uri_for(seed), wcfg, "mgs")
        for body in sorted(set(raw.body)):
            labels = raw.timelines[body].values                       # each frame's list, as it changed
            out.planted.append(list({(m["name"], m["t_start"]): m for v in labels if v for m in v}.values()))
            out.ids.append(f"{cfg.uri_for(seed)}#b{body}")
            rows = [i for i, b in enumerate(raw.body) if b == body]
            out.windows += [WindowInput(raw.joints[i], raw.confidence[i], cfg.fps, raw.layout) for i in rows]
            out.start += [raw.span[i][0] for i in rows]
            out.clip += [len(out.ids) - 1] * len(rows)
            out.end.append(max(raw.span[i][1] for i in rows))
    return out


def coverage(clips: MGClips, chunks: int, names: tuple[str, ...] = NAMES) -> np.ndarray:
    """``[N, K, M]``: the share of each window's time chunk covered by a planted MG of each name."""
    out = np.zeros((len(clips.windows), chunks, len(names)))
    for i, (w, t0, c) in enumerate(zip(clips.windows, clips.start, clips.clip)):
        edges = t0 + np.arange(chunks + 1) * len(w.joints) / w.fps / chunks          # [K+1] seconds
        for p in clips.planted[c]:
            inside = np.minimum(edges[1:], p["t_end"]) - np.maximum(edges[:-1], p["t_start"])
            m = names.index(p["name"])
            out[i, :, m] = np.maximum(out[i, :, m], np.clip(inside / np.diff(edges), 0.0, 1.0))
    return out


@torch.no_grad()
def encode(encoder: SkeletonEncoder, windows: list[WindowInput], batch: int = 256) -> torch.Tensor:
    """``st_tokens [N, P*K, D]`` of the frozen encoder (eval mode) over un-augmented windows."""
    encoder.eval()
    parts = [windows[s:s + batch] for s in range(0, len(windows), batch)]
    return torch.cat([encoder(torch.from_numpy(np.stack([encoder.cfg.featurise(w) for w in part])),
                              encoder.layout_ids([w.layout for w in part]))["st_tokens"] for part in parts])


def _best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold of ``p [n]`` on a 0.05 grid with the best F1 against ``y [n]`` (0.95: no positives)."""
    grid = np.round(np.linspace(0.05, 0.95, 19), 2)
    above = p[None] >= grid[:, None]                                         # [19, n]
    f1 = 2 * (above & y[None]).sum(1) / np.maximum(above.sum(1) + y.sum(), 1)
    return float(grid[np.argmax(f1)]) if y.any() else 0.95


def _masked_bce(logits: torch.Tensor, y: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (loss * known).sum() / known.sum().clamp_min(1)


def fit_head(st: torch.Tensor, cover: np.ndarray, encoder: SkeletonEncoder, opts: ProbeOptions,
             seed: int) -> mg_learned.MGHead:
    """Train an MG head on frozen tokens ``st [N, P*K, D]`` with chunk coverage ``[N, K, M]``."""
    torch.manual_seed(seed)
    cfg = mg_learned.HeadConfig(encoder.cfg.dim, encoder.cfg.time_chunks, hidden=opts.hidden,
                                encoder=mg_learned.encoder_digest(encoder))
    head = mg_learned.MGHead(cfg)
    head.normalise(*head.inputs(st))
    chunk_y = cover >= opts.cover                                           # [N, K, M]
    chunk_known = chunk_y | (cover == 0)
    window_y = chunk_y.any(1)                                               # [N, M]
    window_known = window_y | (cover.max(1) == 0)
    targets = [torch.from_numpy(a.astype(np.float32)) for a in (window_y, window_known, chunk_y, chunk_known)]
    optim = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    for _ in range(opts.steps):
        w, c = head(st)
        loss = _masked_bce(w, *targets[:2]) + _masked_bce(c, *targets[2:])
        optim.zero_grad()
        loss.backward()
        optim.step()
    p_window, p_chunk = mg_learned.LearnedDetector(head).probabilities(st)
    pick = lambda p, y, known: tuple(_best_threshold(p[..., m][known[..., m]], y[..., m][known[..., m]])  # noqa: E731
                                     for m in range(len(cfg.names)))
    head.cfg = dataclasses.replace(cfg, window_threshold=pick(p_window, window_y, window_known),
                                   chunk_threshold=pick(p_chunk, chunk_y, chunk_known))
    return head.eval()


def score(results: list[MGResult], clips: MGClips) -> dict[str, Tally]:
    """Event-level matches per MG of one detector's window results over the clips."""
    counts = {n: Tally() for n in NAMES}
    overlap = lambda m, p: m.t_start <= p["t_end"] and p["t_start"] <= m.t_end   # noqa: E731
    for c, planted in enumerate(clips.planted):
        found: list[MG] = [m for r, t0, k in zip(results, clips.start, clips.clip) if k == c
                           for m in r.shifted(t0).present]
        done = [p for p in planted if p["t_end"] < clips.end[c]]
        cut = [p for p in planted if p["t_end"] >= clips.end[c]]
        tally([m for m in found if not any(overlap(m, p) for p in cut)], done, counts)
    return counts


def _row(t: Tally) -> dict:
    """A detector's figures for one MG; None where undefined (no detections: no precision)."""
    p, r = (None if np.isnan(v) else v for v in (t.precision, t.recall))
    f1 = 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else (0.0 if t.planted else None)
    return {"detected": t.detected, "precision": p, "recall": r, "f1": f1}


def macro(per_mg: dict[str, dict], detector: str) -> dict[str, float | None]:
    """Mean precision / recall / F1 of one detector over the MGs that were planted (and defined)."""
    out = {}
    for k in ("precision", "recall", "f1"):
        values = [row[detector][k] for row in per_mg.values() if row["planted"] and row[detector][k] is not None]
        out[k] = float(np.mean(values)) if values else None
    return out


def table(per_mg: dict[str, dict], detectors: tuple[str, ...] = ("rules", "learned")) -> str:
    """The Markdown table of per-MG precision / recall / F1, one column group per detector."""
    keys = ("precision", "recall", "f1")
    cells = lambda row: " | ".join("-" if row[k] is None else f"{row[k]:.2f}" for k in keys)   # noqa: E731
    lines = ["| MG | planted | " + " | ".join(f"{d} P | {d} R | {d} F1" for d in detectors) + " |",
             "|" + "---|" * (2 + 3 * len(detectors))]
    lines += [f"| {name} | {row['planted']} | " + " | ".join(cells(row[d]) for d in detectors) + " |"
              for name, row in per_mg.items()]
    lines.append(f"| **macro** | {sum(r['planted'] for r in per_mg.values())} | "
                 + " | ".join(cells(macro(per_mg, d)) for d in detectors) + " |")
    return "\n".join(lines) + "\n"


def run(cfg: Config, out: str | Path | None = None) -> Path:
    """Fit and evaluate as configured; returns the run folder."""
    out = Path(out or cfg.out)
    init = cfg.init
    if init is None:                       # pre-train first
        folder = out / "pretrain"
        if not (folder / "results.json").is_file():
            pretrain.run(cfg.pretrain_config(out), out=folder)
        init = str(folder / "checkpoint")
    info = setup(cfg.runtime, cfg.seed)
    if info.main:   # the head is one small full-batch fit: under torchrun rank 0 fits, the others wait
        _run(cfg, out, init)
    info.barrier()
    return out


def _run(cfg: Config, out: Path, init: str) -> Path:
    t0 = time.perf_counter()
    ck = checkpoint.load(init)
    test_uris = {cfg.clips.uri_for(s) for s in cfg.clips.test_seeds}
    if leaked := sorted(test_uris & set(ck.meta.get("datasets", ()))):
        raise SplitError(f"init={init} was trained on test clip(s) {', '.join(leaked[:3])}: choose other "
                         "clips.test_seeds or an encoder that never saw them")
    rundir = RunDir(out, config_io.to_dict(dataclasses.replace(cfg, out=str(out))), resume=cfg.runtime.resume)
    train, test = read_clips(cfg.clips, cfg.clips.train_seeds), read_clips(cfg.clips, cfg.clips.test_seeds)
    K = ck.cfg.encoder.time_chunks
    cover = coverage(train, K)

    def learned(encoder: SkeletonEncoder) -> tuple[mg_learned.MGHead, list[MGResult]]:
        head = fit_head(encode(encoder, train.windows), cover, encoder, cfg.probe, cfg.seed)
        return head, mg_learned.LearnedDetector(head).results(encode(encoder, test.windows), test.windows)

    head, learned_results = learned(ck.encoder)
    rules_results = [mg_rules.detect(w.joints, w.confidence, w.fps) for w in test.windows]
    scored = {"rules": score(rules_results, test), "learned": score(learned_results, test)}
    if cfg.probe.baseline:
        torch.manual_seed(cfg.seed)
        scored["learned_untrained_encoder"] = score(learned(SkeletonEncoder(ck.cfg.encoder))[1], test)
    per_mg = {n: {"planted": scored["rules"][n].planted, **{d: _row(t[n]) for d, t in scored.items()}}
              for n in NAMES}
    metrics = {f"{d}_macro_{k}": v for d in scored for k, v in macro(per_mg, d).items()}
    split = Split("clip", tuple(train.ids), tuple(test.ids), seed=None)
    meta = {"stage": "mg_probe", "init": init, "split": split.to_dict(), "metrics": metrics,
            "data": {"train_windows": len(train.windows), "test_windows": len(test.windows),
                     "train_planted": sum(map(len, train.planted)), "test_planted": sum(map(len, test.planted))}}
    head.cfg = dataclasses.replace(head.cfg, meta={"run": str(out), "init": init, "metrics": metrics})
    shutil.rmtree(rundir.checkpoint, ignore_errors=True)
    shutil.copytree(init, rundir.checkpoint)
    mg_learned.save(rundir.checkpoint, head)
    md = table(per_mg)
    if cfg.probe.baseline:
        base = macro(per_mg, "learned_untrained_encoder")
        md += ("\nThe learned head on an untrained encoder instead: macro P / R / F1 "
               + " / ".join("-" if v is None else f"{v:.2f}" for v in base.values()) + "\n")
    (out / "mg_table.md").write_text(md)
    rundir.write_results({**meta, "per_mg": per_mg, "seconds": round(time.perf_counter() - t0, 1),
                          "thresholds": {"window": dict(zip(NAMES, head.cfg.window_threshold)),
                                         "chunk": dict(zip(NAMES, head.cfg.chunk_threshold))}})
    return out
