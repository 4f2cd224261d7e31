"""The skeleton-LLM of one checkpoint behind the inference interface every backend shares.

    recognise(windows) -> [Reading]          probabilities over the label set (LLM label scoring, or
                                             the encoder's fast head with path="head")
    explain(windows, labels) -> [str]         generation conditioned on the same skeleton tokens
    explain_stream(window, label) -> iter     the same, piece by piece
    label_probs / explain_tokens              the same from precomputed skeleton tokens and
                                             descriptors (a tokenizer worker computed them)

Per window: features + descriptors (numpy) -> encoder -> projector -> skeleton tokens [S, H] spliced
into the chat prompt. The recognition prompt's prefix is identical for every window, so its KV
cache is computed once and shared across calls and across the batch.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from bodytalk.model import checkpoint
from bodytalk.model.skeleton import descriptors as desc, mg_learned, mg_rules
from bodytalk.model.text import evidence_text, grounding
from bodytalk.model.text.claim_guard import ClaimGuard
from bodytalk.model.llm import int8_copies
from bodytalk.model.llm.backend import LLMBackend
from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.constants import EXPLANATION, RECOGNITION, RECOGNITION_TOKENS
from bodytalk.model.encoder import SkeletonEncoder
from bodytalk.model.skeleton.features import InsufficientData, WindowInput
from bodytalk.model.skeleton.microgestures import MGResult
from bodytalk.model.projector import Projector, evidence_dim, evidence_features, head_prior_logits

log = logging.getLogger("bodytalk.model")


@dataclass
class Reading:
    """The model's reading of one window."""
    status: str                                  # "ok" | "insufficient_data"
    probs: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    descriptors: desc.Descriptors | None = None
    mgs: MGResult | None = None                  # micro-gestures (times relative to the window start)
    reason: str | None = None                    # why the window could not be read
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Prepared:
    """Windows that passed validation, as tensors, plus per-window evidence."""
    index: list[int]            # positions in the caller's list
    x: torch.Tensor             # [B, T, J, C]
    layout_ids: torch.Tensor    # [B]
    evidence: list[desc.Descriptors]
    mgs: list[MGResult]         # micro-gestures per window (geometric rules; the learned head's after encode)
    features: torch.Tensor      # [B, evidence_dim] descriptor (+ MG) features: the projector's evidence tokens
    inputs: list[WindowInput]   # the windows themselves (the learned MG head reads their joint validity)
    rejected: dict[int, str]    # positions in the caller's list that failed validation -> the reason

    def readings(self, count: int) -> list["Reading | None"]:
        """One slot per window of the caller's list: an insufficient-data reading where it was rejected."""
        out: list[Reading | None] = [None] * count
        for i, reason in self.rejected.items():
            out[i] = Reading(status="insufficient_data", reason=reason)
        return out


class EmotionModel:
    def __init__(self, cfg: ModelConfig, encoder: SkeletonEncoder, projector: Projector,
                 llm: LLMBackend | None = None, meta: dict | None = None, mg_detector=None) -> None:
        self.cfg, self.encoder, self.projector, self.llm = cfg, encoder, projector, llm
        self.mg_detector = mg_detector   # mg_learned.LearnedDetector when the checkpoint has an MG head
        self.meta = meta or {}
        self.cues = evidence_text.cue_table(cfg.label_cues)   # what explanations may give as reasons
        self.labels = cfg.labels
        self._builders: dict[str, object] = {}
        self._prefixes: dict[str, object] = {}    # per prompt kind: the LLM's cache of its shared prefix
        self._guard: ClaimGuard | None = None     # built on the first explanation

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, with_llm: bool = True, int8: bool = True) -> "EmotionModel":
        """A checkpoint folder; the base LLM comes from ``cfg.llm.base`` and the adapter from the folder.
        ``int8``: the LLM computes with int8 copies of its weights (int8_copies: decoding, explanation
        prompts and label scoring; the MLP's down projection too when the checkpoint is calibrated);
        False: with its exact weights."""
        ck = checkpoint.load(path)
        llm = None
        if with_llm and ck.cfg.llm is not None:
            from bodytalk.model.llm.hf import SkeletonLLM
            llm = SkeletonLLM.load(ck.cfg.llm)
            if ck.adapter is not None:
                llm.load_adapter(ck.adapter)
            if int8:   # with the checkpoint's calibration maxima, when it has them (`bodytalk model calibrate`)
                int8_copies.enable(llm.lm, act_max=int8_copies.load_calibration(path))
        return cls(ck.cfg, ck.encoder, ck.projector, llm, ck.meta, mg_learned.load(path, ck.encoder))

    @classmethod
    def untrained(cls, cfg: ModelConfig, llm: LLMBackend | None = None, seed: int = 0) -> "EmotionModel":
        torch.manual_seed(seed)
        return cls(cfg, SkeletonEncoder(cfg.encoder).eval(), Projector(cfg.projector).eval(), llm)

    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        return checkpoint.save(path, self.cfg, self.encoder, self.projector, self.llm, meta or self.meta)

    # --- the tokenizer side -----------------------------------------------------------------------
    def prepare(self, windows: Sequence[WindowInput]) -> Prepared:
        """Validate and featurise; windows that cannot be read are listed in ``rejected`` with the reason."""
        keep, feats, evidence, mgs, rejected = [], [], [], [], {}
        for i, w in enumerate(windows):
            try:
                f = self.cfg.encoder.featurise(w)
                d = desc.compute(w.joints, w.confidence, w.fps)
                if (why := desc.implausible(d)) is not None:
                    raise InsufficientData(why)
                m = mg_rules.detect(w.joints, w.confidence, w.fps)
            except InsufficientData as err:
                rejected[i] = str(err)
                continue
            except (ValueError, ArithmeticError, IndexError, KeyError) as err:
                # A window the checks above let through but a numeric step could not read: refused
                # with the reason, never a dead process.
                log.warning("unreadable window (%s: %s)", type(err).__name__, err)
                rejected[i] = f"unreadable window ({type(err).__name__})"
                continue
            feats.append(f)
            evidence.append(d)
            mgs.append(m)
            keep.append(i)
        x = torch.from_numpy(np.stack(feats)) if feats else torch.zeros(0, self.cfg.encoder.frames, 17, 10)
        ids = self.encoder.layout_ids([windows[i].layout for i in keep])
        ev = torch.from_numpy(np.stack([self.evidence_features(d, m) for d, m in zip(evidence, mgs)]) if evidence
                              else np.zeros((0, evidence_dim(self.cfg.mg_cues)), np.float32))
        return Prepared(keep, x, ids, evidence, mgs, ev, [windows[i] for i in keep], rejected)

    @torch.no_grad()
    def encode(self, p: Prepared) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Encoder outputs and projected skeleton tokens [B, S, H] (on the encoder's device: a model
        evaluated inside a GPU training run). With a learned MG head, ``p.mgs`` become its detections
        from this same encoder pass (the evidence features keep the rules' MGs, which training saw)."""
        device = next(self.encoder.parameters()).device
        enc = self.encoder(p.x.to(device), p.layout_ids.to(device))
        if self.mg_detector is not None and p.index:
            p.mgs[:] = self.mg_detector.results(enc["st_tokens"], p.inputs)
        return enc, self.projector(enc, p.features.to(device))

    # --- the interface ----------------------------------------------------------------------------
    def recognise(self, windows: Sequence[WindowInput], path: str = "auto") -> list[Reading]:
        """One reading per window. ``path``: "llm" (label scoring), "head" (encoder head), "auto"."""
        path = self.label_path(path)
        t0 = time.perf_counter()
        p = self.prepare(windows)
        readings = p.readings(len(windows))
        if not p.index:
            return readings
        t1 = time.perf_counter()
        enc, tokens = self.encode(p)
        t2 = time.perf_counter()
        probs = self.label_probs(tokens, [self.evidence_line(d, m) for d, m in zip(p.evidence, p.mgs)],
                                 enc["logits"], path)
        t3 = time.perf_counter()
        stages = {"features": (t1 - t0) * 1e3, "encoder": (t2 - t1) * 1e3, "label": (t3 - t2) * 1e3}
        for row, i in enumerate(p.index):
            pr = {lab: float(v) for lab, v in zip(self.labels, probs[row].tolist())}
            readings[i] = Reading(status="ok", probs=pr, label=max(pr, key=pr.get),
                                  descriptors=p.evidence[row], mgs=p.mgs[row], latency_ms=dict(stages))
        return readings

    def _builder(self, kind: str):
        if kind not in self._builders:
            from bodytalk.model.llm.prompt import PromptBuilder
            template = EXPLANATION if kind == "explain" else (
                RECOGNITION_TOKENS if self.cfg.projector.evidence_tokens else RECOGNITION)
            self._builders[kind] = PromptBuilder(self.llm.tokenizer, self.llm.embed, template, self.labels)
        return self._builders[kind]

    def evidence_line(self, d: desc.Descriptors, mgs: MGResult | None) -> str:
        """The prompt's evidence line: descriptors, plus micro-gestures when the model was trained with
        them (``cfg.mg_cues``; the issue-7 ablation trains with and without)."""
        return evidence_text.render(d, mgs=mgs if self.cfg.mg_cues else None)

    def evidence_features(self, d: desc.Descriptors, mgs: MGResult | None):
        """The projector's evidence input ``[evidence_dim]`` (MGs only for a model trained with them)."""
        return evidence_features(d, mgs if self.cfg.mg_cues else None)

    def reset_cache(self) -> None:
        """Forget the cached prompt prefixes (after the LLM's weights change)."""
        self._prefixes.clear()

    def _prefix(self, kind: str):
        """The LLM's cache of the shared prefix of the `kind` prompt ("recognise" or "explain")."""
        if kind not in self._prefixes:
            self._prefixes[kind] = self.llm.cache_prefix(self._builder(kind).prefix_embeds())
        return self._prefixes[kind]

    def label_path(self, path: str = "auto") -> str:
        """Resolve "auto": the path the checkpoint's training measured better on held-out windows
        (its meta ``label_path``, train/instruct.better_path: the head on a tie or when nothing was
        held out) when this model can take it, else "llm" when it has its LLM, else "head"."""
        if path == "auto":
            return "llm" if self.llm is not None and self.meta.get("label_path") != "head" else "head"
        if path == "llm" and self.llm is None:
            raise ValueError("this model was loaded without its LLM; use path='head'")
        if path not in ("llm", "head"):
            raise ValueError(f"path must be auto, llm or head, not {path!r}")
        return path

    @torch.no_grad()
    def label_scores(self, tokens: torch.Tensor, evidence_texts: Sequence[str]) -> torch.Tensor:
        """The LLM's own label scores ``[B, L]`` (log-softmax over the labels of each label's
        log-likelihood), before the label bias and the head prior: what ``label_probs`` starts from."""
        batch = self._builder("recognise").build(tokens, list(evidence_texts), with_prefix=False)
        return self.llm.label_log_likelihoods(batch.inputs_embeds, batch.attention_mask, self.labels,
                                              prefix=self._prefix("recognise"),
                                              scoring=self.llm.config.label_scoring).log_softmax(-1)

    @torch.no_grad()
    def label_probs(self, tokens: torch.Tensor, evidence_texts: Sequence[str], head_logits: torch.Tensor,
                    path: str = "auto") -> torch.Tensor:
        """Label probabilities [B, L] from precomputed tokenizer outputs (what a tokenizer worker
        sends the server): skeleton tokens [B, S, H], rendered descriptor lines (B), head logits [B, L]."""
        if self.label_path(path) == "head":
            return head_logits.softmax(-1)
        scores = self.label_scores(tokens, evidence_texts)                                        # [B, L]
        if self.cfg.label_bias is not None:   # the LLM's taste for some label words, measured on training windows
            scores = scores - scores.new_tensor(self.cfg.label_bias)
        if self.cfg.projector.head_prior:
            scores = head_prior_logits(scores, head_logits.to(scores.device))
        return scores.softmax(-1)

    def _explain_batch(self, windows: Sequence[WindowInput], labels: Sequence[str]):
        p = self.prepare(windows)
        if p.rejected:
            raise InsufficientData(next(iter(p.rejected.values())))
        _, tokens = self.encode(p)
        return self._explain_prompt(tokens, p.evidence, labels, p.mgs), p

    def _explain_prompt(self, tokens: torch.Tensor, evidence: Sequence[desc.Descriptors], labels: Sequence[str],
                        mgs: Sequence[MGResult | None]):
        if self.llm is None:
            raise ValueError("explanations need the LLM: load the checkpoint with its base model")
        return self._builder("explain").build(tokens, [self.evidence_line(d, m) for d, m in zip(evidence, mgs)],
                                              labels=list(labels), with_prefix=False,
                                              answers=[self._opening(label, d) for label, d in zip(labels, evidence)])

    def explain(self, windows: Sequence[WindowInput], labels: Sequence[str], max_new_tokens: int = 40,
                drop_unsupported: bool = True) -> list[tuple[str, list[grounding.Claim]]]:
        """(explanation, unsupported claims) per window; unsupported sentences dropped by default."""
        batch, p = self._explain_batch(windows, labels)
        return self._generate_explanations(batch, labels, p.evidence, p.mgs, max_new_tokens, drop_unsupported)

    @torch.no_grad()
    def explain_tokens(self, tokens: torch.Tensor, evidence: Sequence[desc.Descriptors], labels: Sequence[str],
                       max_new_tokens: int = 40, drop_unsupported: bool = True,
                       mgs: Sequence[MGResult | None] | None = None) -> list[tuple[str, list[grounding.Claim]]]:
        """``explain`` from precomputed skeleton tokens [B, S, H], descriptors and micro-gestures
        (the serving split)."""
        mgs = list(mgs) if mgs is not None else [None] * len(evidence)
        batch = self._explain_prompt(tokens, evidence, labels, mgs)
        return self._generate_explanations(batch, labels, evidence, mgs, max_new_tokens, drop_unsupported)

    def explain_tokens_stream(self, tokens: torch.Tensor, evidence: desc.Descriptors, label: str,
                              mgs: MGResult | None = None, max_new_tokens: int = 40) -> Iterator[str]:
        """``explain_tokens`` of one window (skeleton tokens [1, S, H]) as raw text pieces while they
        are generated (the first is the opening, `evidence_text.opening`); ``ground`` the joined text
        afterwards."""
        batch = self._explain_prompt(tokens, [evidence], [label], [mgs])
        return self._stream_after_opening(batch, label, evidence, mgs, max_new_tokens)

    @staticmethod
    def ground(text: str, evidence: desc.Descriptors, mgs: MGResult | None = None,
               drop_unsupported: bool = True) -> tuple[str, list[grounding.Claim]]:
        """(the text, without its unsupported sentences by default; the unsupported claims). A
        micro-gesture claim is supported only when it was detected (and observable). A clause cut off
        by the token limit is removed first (grounding.trim_unfinished)."""
        text = grounding.trim_unfinished(text)
        kept = grounding.filter_unsupported(text, evidence, mgs=mgs) if drop_unsupported else text
        return kept, grounding.check(text, evidence, mgs=mgs)

    def _opening(self, label: str, evidence: desc.Descriptors) -> str:
        """The opening of an explanation of ``label`` for this window: it says so when none of the
        label's cues was measured in it (``evidence_text.opening``)."""
        return evidence_text.opening(label, supported=bool(evidence_text.supporting(evidence, label, cues=self.cues)))

    def _guards(self, evidence: Sequence[desc.Descriptors], mgs: Sequence[MGResult | None], labels: Sequence[str],
                budget: int) -> dict:
        """``generate`` keywords that keep each explanation to its window's measured phrases that are
        reasons for its label (``evidence_text.reasons``: the label's supporting cues, else the most
        salient phrases; ``text.claim_guard``), opening with a supporting one when there is one, for a
        backend that takes them. Left to choose among every measured phrase, an under-trained LoRA
        cites the same few (speed, limb and hand movement) whatever the label: true, but no reason
        for it."""
        if not getattr(self.llm, "guards_claims", False):
            return {}
        if self._guard is None:
            self._guard = ClaimGuard(self.llm.tokenizer, self.llm.stop_ids)
        return {"allowed": [self._guard.for_window(evidence_text.citable(d, m if self.cfg.mg_cues else None, label,
                                                                         self.cues),
                                                   budget, lead=len(evidence_text.supporting(d, label, cues=self.cues)))
                            for d, m, label in zip(evidence, mgs, labels)]}

    def _generate_explanations(self, batch, labels: Sequence[str], evidence: Sequence[desc.Descriptors],
                               mgs: Sequence[MGResult | None], max_new_tokens: int,
                               drop_unsupported: bool) -> list[tuple[str, list[grounding.Claim]]]:
        texts = self.llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=max_new_tokens,
                                  prefix=self._prefix("explain"), **self._guards(evidence, mgs, labels, max_new_tokens))
        return [self.ground(self._opening(label, ev) + text, ev, m, drop_unsupported)
                for label, text, ev, m in zip(labels, texts, evidence, mgs)]

    def _stream_after_opening(self, batch, label: str, evidence: desc.Descriptors, mgs: MGResult | None,
                              max_new_tokens: int) -> Iterator[str]:
        yield self._opening(label, evidence)
        guard = {k: v[0] for k, v in self._guards([evidence], [mgs], [label], max_new_tokens).items()}
        yield from self.llm.generate_stream(batch.inputs_embeds, batch.attention_mask, max_new_tokens=max_new_tokens,
                                            prefix=self._prefix("explain"), **guard)

    def explain_stream(self, window: WindowInput, label: str, max_new_tokens: int = 40) -> Iterator[str]:
        """Explanation text pieces as they are generated (not yet grounding-filtered); the first is
        the opening (`evidence_text.opening`), which names the label."""
        batch, p = self._explain_batch([window], [label])
        return self._stream_after_opening(batch, label, p.evidence[0], p.mgs[0], max_new_tokens)
