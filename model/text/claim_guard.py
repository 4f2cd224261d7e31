"""Grounded decoding: an explanation may only be written from its window's measured phrases.

An explanation continues its opening ("Sad movement:") with claims, and training taught the LLM one
form of claim: a measured phrase of the window, word for word ("hands nearly still (0.03 m/s)",
``Descriptor.phrase``, and with micro-gestures their phrases), 2-4 of them, separated by ``,`` or
``;``, ending with ``.``. What the grounding check flags in free decoding (a number misread from the
prompt, a claim repeated three times, a smile) is what an under-trained LoRA does when it leaves
that form. This guard keeps it in the form while it decodes: at each step it names the tokens that
may come next, and the model takes its best one among them:

- at the start of a claim: the first token of a phrase not yet cited (the first claim, given a
  ``lead``: of one of the first phrases, the reasons that support the label);
- inside a claim: the next token of every unused phrase the claim so far is a prefix of;
- where a phrase is complete: a separator (when another claim may follow), ``.``, or those fused
  with the phrase's last token (byte-level BPE writes ``),`` and ``).`` as one token);
- after ``.``: only the end of the turn.

So every claim is a measured phrase, no phrase comes twice and no descriptor is worded two ways
(each has one phrase): served explanations are grounded and free of repeats and contradictions by
construction. The LLM still chooses which cues to cite, in which order, and how many (at most
``max_claims``). It is constrained decoding over the window's own evidence, as recognition is over
the label set. ``SkeletonLLM.generate`` / ``generate_stream`` take one guard per row
(``allowed=``); the vLLM backend decodes unguarded (its transport sends whole requests).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SEPARATORS = (",", ";")
END = "."


@dataclass(frozen=True)
class _Phrase:
    ids: tuple[int, ...]           # " hands nearly still (0.03 m/s)" as tokens, leading space included
    fused: dict[str, int]          # "," / ";" / "." -> the one token of the last token's text + it, if any


class ClaimGuard:
    """Built once per tokenizer; ``for_window(phrases)`` gives the row's ``allowed(ids)``."""

    def __init__(self, tokenizer, stops: Sequence[int], max_claims: int = 4) -> None:
        self.tokenizer, self.stops, self.max_claims = tokenizer, frozenset(stops), max_claims
        self.marks = {m: self._single(m) for m in (*SEPARATORS, END)}       # None when not one token

    def _single(self, text: str) -> int | None:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 else None

    def _phrase(self, text: str) -> _Phrase:
        ids = tuple(self.tokenizer(" " + text, add_special_tokens=False)["input_ids"])
        last = self.tokenizer.decode(ids[-1:])
        fused = {m: t for m in self.marks if (t := self._single(last + m)) is not None}
        return _Phrase(ids, fused)

    def for_window(self, phrases: Sequence[str], budget: int, lead: int | None = None) -> "WindowGuard | None":
        """The guard of one explanation citing from ``phrases`` in at most ``budget`` new tokens (None
        without any phrase: decode freely). With ``lead``, the first claim is one of the first
        ``lead`` phrases that fit the budget, when one does (an explanation opens with a reason for
        its label, not with filler)."""
        unique = list(dict.fromkeys(p for p in phrases if p))
        lead = len(unique) if lead is None or lead < 1 else lead
        return WindowGuard(self, [self._phrase(p) for p in unique], budget, lead) if unique else None


class WindowGuard:
    """``allowed(ids)``: the token ids that may follow the generated ``ids`` (a row's whole history)."""

    def __init__(self, guard: ClaimGuard, phrases: list[_Phrase], budget: int, lead: int) -> None:
        self.g, self.phrases, self.budget, self.lead = guard, phrases, budget, lead

    def __call__(self, ids: Sequence[int]) -> set[int]:
        used: set[int] = set()
        live = self._unused(used)           # phrases the current claim may still become: the first
        live = [i for i in live[:self.lead] if self._fits(i, 0)] or live   # a lead one, if one fits
        pos = 0                             # tokens into the current claim
        for t in ids:
            done = [i for i in live if len(self.phrases[i].ids) == pos]
            ended = [i for i in live if self.phrases[i].fused.get(END) == t and len(self.phrases[i].ids) == pos + 1]
            if done and t == self.g.marks[END] or ended:
                return set(self.g.stops)
            joined = [i for i in live if len(self.phrases[i].ids) == pos + 1
                      and t in {self.phrases[i].fused.get(m) for m in SEPARATORS}]
            if done and t in {self.g.marks[m] for m in SEPARATORS} or joined:
                used.add((done or joined)[0])
                live, pos = self._unused(used), 0
                continue
            live = [i for i in live if pos < len(self.phrases[i].ids) and self.phrases[i].ids[pos] == t]
            pos += 1
            if not live:                    # left the phrases (cannot happen under the guard): stop
                return set(self.g.stops)
        return self._next(live, pos, used, len(ids))

    def _unused(self, used: set[int]) -> list[int]:
        return [i for i in range(len(self.phrases)) if i not in used]

    def _fits(self, i: int, start: int) -> bool:
        """Phrase ``i`` begun at token ``start`` ends, with its ``.``, within the budget."""
        return start + len(self.phrases[i].ids) + 1 <= self.budget

    def _next(self, live: list[int], pos: int, used: set[int], n: int) -> set[int]:
        out: set[int] = set()
        for i in live:
            p = self.phrases[i]
            if not self._fits(i, n - pos):
                continue
            # another claim may follow this one: under max_claims, with an unused phrase that fits
            nxt = n - pos + len(p.ids) + 1
            more = len(used) + 1 < self.g.max_claims and any(
                self._fits(j, nxt) for j in self._unused(used) if j != i)
            if pos < len(p.ids):
                out.add(p.ids[pos])
                if pos == len(p.ids) - 1:   # the last token, fused with what follows it
                    out.update(t for m, t in p.fused.items() if m == END or more)
            else:                           # the phrase is complete: a separator or the end
                out.update(t for m in ((*SEPARATORS, END) if more else (END,))
                           if (t := self.g.marks[m]) is not None)
        return out or set(self.g.stops)
