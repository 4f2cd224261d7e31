"""Learned micro-gesture detector: a multi-label head on the frozen encoder's spatio-temporal tokens.

It shares the encoder's forward pass: ``LearnedDetector.results(st_tokens, windows)`` takes the
``st_tokens [B, P*K, D]`` the encoder already produced for the emotion reading (P body parts x K
time chunks, token p*K + k) and the windows they came from. ``detect(joints, confidence, fps)``
runs the encoder itself: the ``microgestures.Detector`` interface, for evaluation and tests.

Per window and MG (M of them, vocabulary order):
- presence: ``p_window = sigmoid(window_head(pooled))``; pooled = the STB streams the pre-training
  contrasted (tokens averaged over time per body part, and over parts per time chunk:
  ``[(P+K)*D]``). The MG is present when ``p_window`` reaches its window threshold.
- time span: ``p_chunk[k] = sigmoid(chunk_head(chunk_k))``, chunk_k = the P part tokens of time
  chunk k side by side (``[P*D]``). A present MG's frames are those of the chunks whose
  ``p_chunk`` reaches its chunk threshold, or of its best chunk when none does, so spans have the
  resolution of one chunk (window / K: 0.4 s for 2 s windows and K = 5).
Thresholds are per MG, chosen on the training windows (``train/mg_probe.py``). The frame
decisions become events through ``microgestures.assemble`` with the rules' ``EventRules``, each
frame scored ``p_window``; observability is the shared rule (``valid_joints`` +
``observability``): an MG whose joints are missing is not observable whatever the head says.

Files beside a checkpoint: ``CKPT/mg_head.safetensors`` (weights and input normalisation) and
``CKPT/mg_head.json`` (``HeadConfig``: sizes, thresholds, and the digest of the encoder it was
trained on; ``load`` refuses a head on another encoder).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bodytalk.capture.layouts import BODY_PARTS
from bodytalk.model.encoder import SkeletonEncoder
from bodytalk.model.skeleton.features import InsufficientData, WindowInput
from bodytalk.model.skeleton.microgestures import NAMES, MGResult, assemble, observability, valid_joints

WEIGHTS, CONFIG = "mg_head.safetensors", "mg_head.json"
FORMAT = "bodytalk-mg-head/1"
# Encoder parameters that do not reach the spatio-temporal tokens (label head, semantic queries):
# retraining them leaves a head valid, so the digest skips them.
_NOT_ST = ("head.", "queries", "attn.")


def encoder_digest(encoder: SkeletonEncoder) -> str:
    """A fingerprint of the encoder weights that produce ``st_tokens`` (16 hex digits)."""
    h = hashlib.sha1()
    for name, value in sorted(encoder.state_dict().items()):
        if not name.startswith(_NOT_ST):
            h.update(name.encode())
            h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class HeadConfig:
    dim: int                                # D, the encoder's token size
    time_chunks: int                        # K
    parts: int = len(BODY_PARTS)            # P
    hidden: int = 0                         # 0: linear probe; > 0: one hidden ReLU layer this wide
    names: tuple[str, ...] = NAMES          # the MGs, output order
    window_threshold: tuple[float, ...] = ()   # per MG (default 0.5 each)
    chunk_threshold: tuple[float, ...] = ()
    encoder: str = ""                       # encoder_digest of the encoder it was trained on
    meta: dict = field(default_factory=dict, compare=False)   # provenance (training run, metrics)

    def __post_init__(self) -> None:
        for name in ("names", "window_threshold", "chunk_threshold"):
            object.__setattr__(self, name, tuple(getattr(self, name)) or (0.5,) * len(self.names))
        if unknown := sorted(set(self.names) - set(NAMES)):
            raise ValueError(f"HeadConfig: unknown micro-gesture(s) {unknown}; known: {', '.join(NAMES)}")
        if min(self.dim, self.time_chunks, self.parts) < 1 or self.hidden < 0:
            raise ValueError(f"HeadConfig: need dim, time_chunks, parts >= 1 and hidden >= 0: {self}")
        for th in (self.window_threshold, self.chunk_threshold):
            if len(th) != len(self.names) or not all(0 < t < 1 for t in th):
                raise ValueError(f"HeadConfig: need one threshold in (0, 1) per MG ({len(self.names)}), got {th}")

    @property
    def window_features(self) -> int:
        return (self.parts + self.time_chunks) * self.dim

    @property
    def chunk_features(self) -> int:
        return self.parts * self.dim


def _layer(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Linear(n_in, n_out) if not hidden else nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(),
                                                                  nn.Linear(hidden, n_out))


class MGHead(nn.Module):
    """``st_tokens [B, P*K, D]`` -> window logits ``[B, M]`` and chunk logits ``[B, K, M]``. Inputs are
    standardised with the training features' mean and std (buffers, saved with the weights)."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m, fw, fc = len(cfg.names), cfg.window_features, cfg.chunk_features
        for name, n in (("window_mean", fw), ("window_std", fw), ("chunk_mean", fc), ("chunk_std", fc)):
            self.register_buffer(name, torch.zeros(n) if name.endswith("mean") else torch.ones(n))
        self.window = _layer(fw, cfg.hidden, m)
        self.chunk = _layer(fc, cfg.hidden, m)

    def inputs(self, st_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw features: pooled ``[B, (P+K)*D]`` and per chunk ``[B, K, P*D]``."""
        b, (p, k) = len(st_tokens), (self.cfg.parts, self.cfg.time_chunks)
        if st_tokens.shape[1:] != (p * k, self.cfg.dim):
            raise ValueError(f"MG head expects st_tokens [B, {p * k}, {self.cfg.dim}] (P={p} x K={k}), got "
                             f"{tuple(st_tokens.shape)}: the head belongs to another encoder config")
        grid = st_tokens.reshape(b, p, k, -1)                                        # [B, P, K, D]
        pooled = torch.cat([grid.mean(2).reshape(b, -1), grid.mean(1).reshape(b, -1)], 1)
        return pooled, grid.transpose(1, 2).reshape(b, k, -1)

    def normalise(self, pooled: torch.Tensor, chunks: torch.Tensor) -> None:
        """Set the input standardisation from training features (``inputs`` of the training windows)."""
        flat = chunks.reshape(-1, chunks.shape[-1])
        for name, x in (("window", pooled), ("chunk", flat)):
            getattr(self, f"{name}_mean").copy_(x.mean(0))
            getattr(self, f"{name}_std").copy_(x.std(0).clamp_min(1e-6))

    def forward(self, st_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, chunks = self.inputs(st_tokens)
        return (self.window((pooled - self.window_mean) / self.window_std),
                self.chunk((chunks - self.chunk_mean) / self.chunk_std))


class LearnedDetector:
    """The learned MG detector (a ``microgestures.Detector``) over one encoder's tokens."""

    def __init__(self, head: MGHead, encoder: SkeletonEncoder | None = None) -> None:
        self.head, self.encoder = head.eval(), encoder
        cfg = head.cfg
        self._window_th, self._chunk_th = np.array(cfg.window_threshold), np.array(cfg.chunk_threshold)
        if encoder is not None and (encoder.cfg.dim, encoder.cfg.time_chunks) != (cfg.dim, cfg.time_chunks):
            raise ValueError(f"MG head built for tokens of dim {cfg.dim} x {cfg.time_chunks} chunks, the encoder "
                             f"gives {encoder.cfg.dim} x {encoder.cfg.time_chunks}: retrain it (train/mg_probe.py)")

    @torch.no_grad()
    def probabilities(self, st_tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``p_window [B, M]`` and ``p_chunk [B, K, M]``."""
        window, chunks = self.head.to(st_tokens.device)(st_tokens)
        return torch.sigmoid(window).cpu().numpy(), torch.sigmoid(chunks).cpu().numpy()

    def results(self, st_tokens: torch.Tensor, windows: Sequence[WindowInput]) -> list[MGResult]:
        """One result per window from the encoder outputs of these windows (no second encoder run)."""
        if len(st_tokens) != len(windows):
            raise ValueError(f"{len(st_tokens)} token rows for {len(windows)} windows")
        p_window, p_chunk = self.probabilities(st_tokens)
        return [self.decide(pw, pc, w) for pw, pc, w in zip(p_window, p_chunk, windows)]

    def decide(self, p_window: np.ndarray, p_chunk: np.ndarray, w: WindowInput) -> MGResult:
        """One window's probabilities (``[M]``, ``[K, M]``) -> its result (see the module notes)."""
        T, (K, M) = len(w.joints), p_chunk.shape
        on = p_chunk >= self._chunk_th                                       # [K, M]
        on[p_chunk.argmax(0), np.arange(M)] = True                           # at least the best chunk
        on &= p_window >= self._window_th                                    # only where present
        frames = on[np.minimum(np.arange(T) * K // T, K - 1)]                # [T, M] chunk of each frame
        decisions = {n: (frames[:, m], np.full(T, float(p_window[m]))) for m, n in enumerate(self.head.cfg.names)}
        return assemble(decisions, observability(valid_joints(w.joints, w.confidence)), w.fps)

    def detect(self, joints: np.ndarray, confidence: np.ndarray, fps: float, layout: str = "unified") -> MGResult:
        """Encode one window and detect (needs the encoder); an unreadable window shows nothing."""
        if self.encoder is None:
            raise ValueError("this detector has no encoder: pass one, or call results() with encoder outputs")
        w = WindowInput(np.asarray(joints), np.asarray(confidence), fps, layout)
        try:
            x = torch.from_numpy(self.encoder.cfg.featurise(w))[None]
        except InsufficientData:
            return MGResult(not_observable=self.head.cfg.names)
        device = next(self.encoder.parameters()).device
        with torch.no_grad():
            st = self.encoder.eval()(x.to(device), self.encoder.layout_ids([layout]).to(device))["st_tokens"]
        return self.results(st, [w])[0]


def save(folder: str | Path, head: MGHead) -> Path:
    """Write ``mg_head.safetensors`` + ``mg_head.json`` into ``folder`` (usually a checkpoint)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps({"format": FORMAT, "config": asdict(head.cfg)}, indent=2))
    return folder


def load_head(folder: str | Path) -> MGHead | None:
    """The head saved in ``folder``, or None when there is none."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        return None
    doc = json.loads((folder / CONFIG).read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG}: format {doc.get('format')!r}, expected {FORMAT!r}")
    head = MGHead(HeadConfig(**doc["config"]))
    head.load_state_dict(load_file(str(folder / WEIGHTS)))
    return head.eval()


def load(folder: str | Path, encoder: SkeletonEncoder) -> LearnedDetector | None:
    """The learned detector of a checkpoint folder for its ``encoder``; None without a head there.
    A head trained on other encoder weights is refused (its features would mean something else)."""
    head = load_head(folder)
    if head is None:
        return None
    if head.cfg.encoder and head.cfg.encoder != encoder_digest(encoder):
        raise ValueError(f"{Path(folder) / CONFIG} was trained on another encoder (digest {head.cfg.encoder}, "
                         f"this one {encoder_digest(encoder)}): retrain it on this checkpoint with "
                         f"`bodytalk train --config mg_probe init={folder}`")
    return LearnedDetector(head, encoder)
