"""Windows -> prompt work: validation, descriptors, encoder and projector, batched (``Tokenizer``).

The step both serving modes share: the tokenizer worker (``bodytalk worker``) runs it in its own process
and pushes the work to the server; the server runs it in-process when no workers feed it. The wire's
evidence map converts back into ``Descriptors`` here too (``descriptors_of``), for the grounding check.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.skeleton.features import WindowInput
from bodytalk.stream import schema

log = logging.getLogger("bodytalk.serving")

_NO_TOKENS = np.zeros((0, 0), np.float32)
_NO_LOGITS = np.zeros(0, np.float32)


def model_fingerprint(model) -> str:
    """A short id of a checkpoint (config and encoder/projector weights): a server refuses work
    from a worker that loaded another one, whose tokens would be meaningless to its LLM."""
    h = hashlib.sha1(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for module in (model.encoder, model.projector):
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def evidence_values(d: desc.Descriptors) -> dict[str, float | None]:
    """Descriptors -> the wire's name -> value map (None where the window lacked the data)."""
    return {name: (x.value if x.valid else None) for name, x in d.items()}


def descriptors_of(work: schema.PromptWork) -> desc.Descriptors:
    """The wire's evidence map back into Descriptors (for the explanation's grounding check)."""
    return desc.Descriptors({k: (math.nan if v is None else v) for k, v in work.evidence.items()},
                            work.valid_share)


def count_error(counts: Counter, err: Exception, who: str) -> None:
    """A batch that raised past every check (server and worker loops): counted as
    ``error_<Type>`` (sent on status), logged with its traceback the first time; the loop goes on."""
    key = f"error_{type(err).__name__}"
    counts[key] += 1
    if counts[key] == 1:
        log.error("%s: dropped a batch it could not read (counted as %s)", who, key, exc_info=err)


class Tokenizer:
    """Windows -> PromptWork: validation, descriptors, encoder and projector, batched."""

    def __init__(self, model) -> None:
        self.model = model
        self.model_id = model_fingerprint(model)

    def tokenize(self, windows: Sequence[tuple[schema.SkeletonWindow, float]]) -> list[schema.PromptWork]:
        """``(window, wall-clock receive time)`` pairs -> one work item each, in order; a window that
        fails validation becomes an "insufficient_data" item carrying the reason."""
        inputs = [WindowInput(m.joints, m.confidence, m.fps, m.layout, m.real_frames) for m, _ in windows]
        t0 = time.perf_counter()
        p = self.model.prepare(inputs)
        t1 = time.perf_counter()
        if p.index:
            enc, tokens = self.model.encode(p)
            tokens = tokens.float().numpy()              # [B, S, H]
            logits = enc["logits"].float().numpy()       # [B, L]
        stages = {"features": (t1 - t0) * 1e3, "encoder": (time.perf_counter() - t1) * 1e3}
        row_of = {i: row for row, i in enumerate(p.index)}
        out = []
        for i, (m, t_recv) in enumerate(windows):
            common = dict(sensor=m.sensor, body=m.body, window_seq=m.seq, t_start=m.t_start, t_end=m.t_end,
                          model=self.model_id, t_received=t_recv, latency_ms=dict(stages),
                          padded=m.padded, real_frames=m.real_frames)
            row = row_of.get(i)
            if row is None:
                out.append(schema.PromptWork(status="insufficient_data", reason=p.rejected[i],
                                             tokens=_NO_TOKENS, head_logits=_NO_LOGITS, **common))
                continue
            if not (np.isfinite(tokens[row]).all() and np.isfinite(logits[row]).all()):
                out.append(schema.PromptWork(status="insufficient_data", reason="the encoder gave non-finite values",
                                             tokens=_NO_TOKENS, head_logits=_NO_LOGITS, **common))
                continue
            d = p.evidence[row]
            out.append(schema.PromptWork(status="ok", tokens=tokens[row], head_logits=logits[row],
                                         evidence=evidence_values(d), valid_share=d.valid_share,
                                         evidence_text=self.model.evidence_line(d, p.mgs[row]),
                                         mgs=p.mgs[row].to_jsonable(), **common))
        return out
