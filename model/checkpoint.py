"""Self-contained checkpoint folders.

  CKPT/
    config.json              ModelConfig (encoder, projector, LLM + LoRA settings; llm.base is the
                             explicit base-model reference: a packaged name, a folder or an HF id),
                             labels, layouts; meta: split, training provenance
    encoder.safetensors      encoder weights
    projector.safetensors    projector weights
    adapter/                 LoRA adapter (peft format), absent before instruction tuning

Loading needs no guessing: everything to rebuild the modules is in config.json.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from bodytalk.model.constants import DEFAULT_LABELS
from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.llm.hf import LLMConfig
from bodytalk.model.projector import Projector, ProjectorConfig, evidence_dim
from bodytalk.model.skeleton.descriptor_bands import SPECS

FORMAT = "bodytalk-checkpoint/1"
MAX_LABEL_BIAS = 20.0   # nats; a label bias beyond it is a corrupt file, not a measurement


@dataclass(frozen=True)
class ModelConfig:
    labels: tuple[str, ...] = DEFAULT_LABELS
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig | None = field(default_factory=LLMConfig)  # None: encoder-only (fast label head)
    mg_cues: bool = False     # detected micro-gestures join the descriptors in the prompt (issue 7 ablation)
    # [L] the LLM's label-word bias (its centred label scores averaged over training windows,
    # train/label_bias.py), taken out of its label scores before they are used; None: not measured
    label_bias: tuple[float, ...] | None = None
    # label -> ((descriptor, direction), ...) learned from training windows (train/label_cues.py): the
    # reasons explanations cite for these labels instead of the literature's (text/evidence_text.py)
    label_cues: dict[str, tuple[tuple[str, int], ...]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.label_bias is not None:
            object.__setattr__(self, "label_bias", _label_bias(self.label_bias, len(self.labels)))
        if self.label_cues is not None:
            object.__setattr__(self, "label_cues", _label_cues(self.label_cues, self.labels))
        if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
            raise ValueError(f"labels must be >= 2 distinct names: {self.labels}")
        if self.encoder.num_labels != len(self.labels):
            raise ValueError(f"encoder has {self.encoder.num_labels} outputs for {len(self.labels)} labels")
        if self.projector.in_dim != self.encoder.dim:
            raise ValueError(f"projector in_dim {self.projector.in_dim} != encoder dim {self.encoder.dim}")
        want = evidence_dim(self.mg_cues, len(self.labels) * self.projector.head_evidence)
        if self.projector.evidence_tokens and self.projector.evidence_dim != want:
            raise ValueError(f"projector evidence_dim {self.projector.evidence_dim} != {want}, the evidence "
                             f"input's width with mg_cues={self.mg_cues}, head_evidence={self.projector.head_evidence}")

    @property
    def prompt_tokens(self) -> int:
        """S, the projected tokens per window in the prompt (semantic, evidence, spatio-temporal)."""
        p = self.projector
        return (self.encoder.semantic_tokens * p.use_sem_tokens + p.evidence_tokens
                + self.encoder.num_st_tokens * p.use_st_tokens)

    @property
    def base_model(self) -> str | None:
        """The base LLM reference (packaged name, folder or HF id), explicit in config.json."""
        return self.llm.base if self.llm else None

    @classmethod
    def create(cls, labels: tuple[str, ...] = DEFAULT_LABELS, hidden: int = 576, encoder: dict | None = None,
               projector: dict | None = None, llm: dict | None = None, with_llm: bool = True,
               mg_cues: bool = False) -> "ModelConfig":
        """A consistent config for a label set and an LLM hidden size."""
        enc = EncoderConfig(num_labels=len(labels), **(encoder or {}))
        head = len(labels) * bool((projector or {}).get("head_evidence"))
        proj = ProjectorConfig(in_dim=enc.dim, out_dim=hidden, hidden=hidden, evidence_dim=evidence_dim(mg_cues, head),
                               **(projector or {}))
        return cls(labels=tuple(labels), encoder=enc, projector=proj,
                   llm=LLMConfig(**(llm or {})) if with_llm else None, mg_cues=mg_cues)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        llm = d.pop("llm")
        return cls(encoder=EncoderConfig(**d.pop("encoder")), projector=ProjectorConfig(**d.pop("projector")),
                   llm=LLMConfig(**llm) if llm else None, **d)


def _label_bias(value, count: int) -> tuple[float, ...]:
    """A checkpoint's label bias as ``count`` floats, or a one-line ValueError (the file is untrusted)."""
    try:
        bias = tuple(float(b) for b in value) if isinstance(value, (list, tuple)) else ()
    except (TypeError, ValueError, ArithmeticError):   # a 400-digit JSON integer overflows float()
        bias = ()
    if len(bias) != count or not all(math.isfinite(b) and abs(b) <= MAX_LABEL_BIAS for b in bias):
        raise ValueError(f"label_bias must hold {count} finite numbers within +-{MAX_LABEL_BIAS:g} "
                         f"(one per label), not {value!r:.80}")
    return bias


def _label_cues(value, labels: tuple[str, ...]) -> dict[str, tuple[tuple[str, int], ...]]:
    """A checkpoint's learned cues, checked (the file is untrusted), or a one-line ValueError."""
    def cue(c) -> tuple[str, int]:
        if not (isinstance(c, (list, tuple)) and len(c) == 2 and c[0] in SPECS and c[1] in (-1, 0, 1)
                and not isinstance(c[1], bool)):
            raise ValueError(f"label_cues: a cue is [descriptor, -1 | 0 | 1] with a known descriptor, not {c!r:.60}")
        return str(c[0]), int(c[1])

    if not isinstance(value, dict) or not set(value) <= set(labels):
        raise ValueError(f"label_cues must map labels of {list(labels)} to cue lists, not {value!r:.80}")
    out = {}
    for label, cues in value.items():
        if not isinstance(cues, (list, tuple)) or len(cues) > len(SPECS):
            raise ValueError(f"label_cues[{label!r}] must be a list of at most {len(SPECS)} cues")
        out[label] = tuple(cue(c) for c in cues)
        if len({n for n, _ in out[label]}) != len(out[label]):
            raise ValueError(f"label_cues[{label!r}] names a descriptor twice")
    return out


def save(path: str | Path, cfg: ModelConfig, encoder: SkeletonEncoder, projector: Projector,
         llm=None, meta: dict | None = None) -> Path:
    """Write a checkpoint folder. ``llm`` with a LoRA adapter saves it under ``adapter/``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path / "encoder.safetensors"))
    save_file({k: v.contiguous() for k, v in projector.state_dict().items()}, str(path / "projector.safetensors"))
    has_adapter = llm is not None and llm.has_adapter
    if has_adapter:
        llm.save_adapter(path / "adapter")
    doc = {"format": FORMAT, "config": cfg.to_dict(), "adapter": "adapter" if has_adapter else None,
           "meta": meta or {}}
    (path / "config.json").write_text(json.dumps(doc, indent=2))
    return path


@dataclass
class Loaded:
    cfg: ModelConfig
    encoder: SkeletonEncoder
    projector: Projector
    adapter: Path | None
    meta: dict
    path: Path


class CheckpointError(ValueError):
    """A folder that holds a checkpoint's config.json but cannot be read as one (corrupt, foreign or
    mismatched files): the message names the folder and the reason, in one line."""


def _document(path: Path) -> dict:
    """A checkpoint folder's config.json, read and checked for its format."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a bodytalk checkpoint (no config.json)")
    try:
        doc = json.loads(cfg_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{cfg_file}: not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{cfg_file}: format {found!r}, expected {FORMAT!r}")
    return doc


def load(path: str | Path) -> Loaded:
    """Read a checkpoint folder (encoder and projector in eval mode; the LLM is loaded by the caller).
    Every way its files can be wrong is a ``CheckpointError`` (or ``FileNotFoundError`` for a folder
    without config.json): a checkpoint is untrusted input."""
    path = Path(path)
    doc = _document(path)
    try:
        cfg = ModelConfig.from_dict(doc["config"])
        encoder, projector = SkeletonEncoder(cfg.encoder), Projector(cfg.projector)
        encoder.load_state_dict(load_file(str(path / "encoder.safetensors")))
        projector.load_state_dict(load_file(str(path / "projector.safetensors")))
        adapter = path / doc["adapter"] if doc.get("adapter") else None
    except Exception as err:   # noqa: BLE001 -- safetensors, torch and the config raise many kinds
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable bodytalk checkpoint: {first[:300]}") from err
    return Loaded(cfg, encoder.eval(), projector.eval(), adapter, doc.get("meta", {}), path)


def replace_config(path: str | Path, **changes) -> ModelConfig:
    """Rewrite a checkpoint's config with ``changes`` (validated as ModelConfig); weights untouched."""
    cfg_file = Path(path) / "config.json"
    doc = _document(Path(path))
    cfg = ModelConfig.from_dict({**doc["config"], **changes})   # a corrupt field can be replaced, not only read
    doc["config"] = cfg.to_dict()
    tmp = cfg_file.with_suffix(".json.tmp")   # written whole, then renamed: never half a config
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(cfg_file)
    return cfg


def describe(path: str | Path) -> dict[str, Any]:
    """What ``bodytalk model info`` prints."""
    ck = load(path)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {"path": str(ck.path), "labels": list(ck.cfg.labels), "base_model": ck.cfg.base_model,
            "layouts": list(ck.cfg.encoder.layouts), "encoder_params": n(ck.encoder),
            "projector_params": n(ck.projector), "skeleton_tokens": ck.cfg.prompt_tokens,
            "evidence_tokens": ck.cfg.projector.evidence_tokens, "adapter": str(ck.adapter) if ck.adapter else None,
            "llm": asdict(ck.cfg.llm) if ck.cfg.llm else None, "label_bias": ck.cfg.label_bias,
            "label_cues": ck.cfg.label_cues, "size_mb": round(size / 1e6, 2), "meta": ck.meta}

