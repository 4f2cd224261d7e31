"""What an explanation may not say next, decided while it is decoded (the grounding check's two
failures that decoding can prevent outright).

The grounding check (``grounding.check``) reads a finished explanation and flags, among others, a
claim that repeats or contradicts an earlier one, and a claim a skeleton cannot support (a smile,
clenched fists). The served text drops those sentences afterwards; this guard keeps the model from
writing them in the first place, so what is served is what the LLM meant:

- **one claim per cue**: an explanation is a list of claims separated by ``,`` or ``;``
  ("little limb movement (0.15 m/s), hands nearly still (0.04 m/s)"). At the start of a claim the
  first token of every earlier claim is banned, so a new claim cannot open as an earlier one did
  ("little limb movement ...; little limb movement ..." is what an under-trained LoRA loops into,
  and "arms close to the body ... arms near the body" is how a contradiction starts);
- **nothing the skeleton cannot show**: whole-word tokens of ``claim_terms.UNOBSERVABLE`` (face,
  smile, eyes, fists, voice, ...) are banned everywhere.

A ban is a next-token mask, so the model's next choice is its best allowed one, and greedy decoding
stays deterministic. Claims whose first tokens agree ("slow walk", "slow hand movements") cannot
both be made: the guard errs towards saying less, never towards an ungrounded claim. The guard
reads token ids only; ``SkeletonLLM.generate`` and ``generate_stream`` apply it.
"""
from __future__ import annotations

from collections.abc import Sequence

from bodytalk.model.text.claim_terms import UNOBSERVABLE

SEPARATORS = (",", ";")


class ClaimGuard:
    """``banned(ids)``: the token ids the next token may not be, after the generated ``ids``."""

    def __init__(self, tokenizer) -> None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])   # one decode per vocab id
        self.separators = frozenset(i for i, t in enumerate(texts) if any(s in t for s in SEPARATORS))
        # A token that is a whole word on its own (" smile", "face"), not a piece of one ("sm" of
        # "small"): its stripped text must be matched entirely by an unobservable pattern.
        self.unobservable = frozenset(
            i for i, t in enumerate(texts)
            if (w := t.strip()).isalpha() and any(p.fullmatch(w) for p, _ in UNOBSERVABLE))

    def claim_starts(self, ids: Sequence[int]) -> list[int]:
        """The first token of each claim begun so far (the token after each separator, and the first)."""
        starts, at_start = [], True
        for i in ids:
            if i in self.separators:
                at_start = True
            elif at_start:
                starts.append(i)
                at_start = False
        return starts

    def banned(self, ids: Sequence[int]) -> set[int]:
        ban = set(self.unobservable)
        if not ids or ids[-1] in self.separators:       # a new claim begins with the next token
            ban.update(self.claim_starts(ids))
        return ban
