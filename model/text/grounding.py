"""Grounding check: every movement claim in an explanation must be true of the measured descriptors.

``claims(text, descriptors)`` finds the claims: words from ``claim_terms`` (our own phrases and
their paraphrases, "walks slowly", "head bowed", "trembling") and numbers with units ("0.6 m/s",
"25°", "12 cm"). Each is judged:
- a word is supported when the descriptor it names lies in one of the bands the word allows,
  widened by the descriptor's margin (a negated word -- "not leaning" -- when it lies outside them);
- a number is compared with the magnitude of the descriptor it belongs to (the nearest claim of a
  matching unit in the same clause, else any descriptor of that unit) within 20 % or 5°;
- a claim about a descriptor with insufficient data, or about something a skeleton cannot show
  (smiling, crying, voice, fingers), is unsupported;
- given a micro-gesture result (``mgs=``, an ``MGResult``), a micro-gesture claim ("touched the
  face twice", "did not fidget") is supported when the detector found it (with that count, if one
  is stated) -- or, negated, when it found it absent; an MG it could not observe cannot be claimed
  either way.
Sentences without movement claims ("The person seems sad.") are fine.

An explanation must also be consistent: a claim about a quantity already claimed (the same
descriptor, or the same micro-gesture) is unsupported even when the measurement bears it out --
``repeated`` when it agrees with the first supported claim of that quantity ("arms close to the
body ... arms near the body"), ``contradictory`` when it asserts an opposite band ("head lowered
10° ... head upright", "arms close to the body ... arms spread wide", "fast hand movements ... hands
still"). The first supported claim is the one kept; ``Claim.issue`` names the problem.

``check`` returns the unsupported claims, ``grounding_rate`` the share of sentences without any,
``filter_unsupported`` drops (or flags) those sentences for serving.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bodytalk.model.text.claim_terms import MG_TERMS, TERMS, UNOBSERVABLE, MGTerm, Term, stated_count
from bodytalk.model.skeleton.descriptor_bands import SPECS
from bodytalk.model.skeleton.descriptors import Descriptor
from bodytalk.model.skeleton.microgestures import VOCABULARY as MG_VOCABULARY, MGResult, count_words

REL_TOL = 0.2            # numbers: within 20 % of the measured magnitude ...
ANGLE_TOL = 5.0          # ... or 5° for angles,
FLOOR = {"m/s": 0.05, "m/s²": 0.15, "m/s³": 3.0, "m": 0.03, "cm": 1.0, "mm": 0.5, "Hz": 0.15, "%": 10.0,
         "m³": 0.03}     # ... or these absolute amounts, whichever is larger
# Written unit -> (dimension, factor to the dimension's base unit).
_UNITS = {"m/s": ("speed", 1.0), "m/s²": ("acc", 1.0), "m/s^2": ("acc", 1.0), "m/s³": ("jerk", 1.0),
          "m/s^3": ("jerk", 1.0), "m³": ("vol", 1.0), "m^3": ("vol", 1.0), "mm": ("len", 0.001),
          "cm": ("len", 0.01), "m": ("len", 1.0), "metre": ("len", 1.0), "meter": ("len", 1.0),
          "°": ("angle", 1.0), "degree": ("angle", 1.0), "deg": ("angle", 1.0), "hz": ("freq", 1.0),
          "%": ("share", 1.0)}
_NUMBER = re.compile(r"(?<![\w.])[+\-−]?(\d+(?:\.\d+)?)\s*(m/s²|m/s\^2|m/s³|m/s\^3|m/s|m³|m\^3|mm|cm|°|%"
                     r"|(?:metre|meter|degree)s?\b|deg\b|hz\b|m\b)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n+")
_CLOSERS = r"[)\"'’»]*"                            # may follow a sentence's final mark
_FINISHED = re.compile(r"[.!?…]" + _CLOSERS + r"$")
_ENDED = re.compile(r"[.!?…]+" + _CLOSERS + r"(?=\s)|\n")   # ends of sentences before the last one
_SPACE = " \t\n\r\f\v"
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:and|but|while|whereas|with)\b", re.IGNORECASE)
_NEGATION = re.compile(r"(?:n't|\bnot|\bno|\bnever|\bwithout|\bnor)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)


@dataclass(frozen=True)
class Claim:
    """One movement claim: where it is, what it was checked against, and the verdict."""
    text: str
    start: int               # character offsets in the explanation
    end: int
    sentence: int            # index of its sentence
    descriptor: str | None   # the descriptor that decided it (None: unobservable or unattributed)
    supported: bool
    reason: str
    mg: str | None = None    # the micro-gesture it claims (None: a descriptor or unobservable claim)
    bands: tuple[str, ...] = ()   # the descriptor bands a word claim asserts ("present" for an MG claim)
    negated: bool = False
    issue: str | None = None      # "repeated" | "contradictory": see the module doc

    @property
    def quantity(self) -> str | None:
        """What the claim is about, for the consistency check (None: a number or unobservable claim)."""
        if self.mg is not None:
            return f"mg:{self.mg}"
        return self.descriptor if self.bands else None


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each non-blank sentence; a full stop inside a number ("0.6") does not end one."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text[start:m.end()].strip():
            spans.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def trim_unfinished(text: str) -> str:
    """Generation stopped by its token limit ends mid-clause ("..., brisk movement (1.5 m/"), and a
    cut-off number is a claim nobody made. Explanations are trained to end with a full stop, so when
    the text does not, its last sentence loses the unfinished clause (after its last ", " or "; "
    outside parentheses) and is closed with one.

    - Finished: the text ends with . ! ? or … (a closing bracket or quote may follow) with its last
      sentence's parentheses closed; "(1." is a cut-off number, not a sentence end.
    - A trailing , ; or : is dropped first: the clause before it was complete, so it is kept.
    - A last sentence with no such boundary is kept (unclosed) for the check to judge."""
    text = text.strip()
    body = text.rstrip(",;:" + _SPACE)
    start = max((m.end() for m in _ENDED.finditer(body)), default=0)
    last = body[start:]
    depth, cuts = 0, []
    for i, ch in enumerate(last):                  # clause boundaries outside parentheses
        depth = depth + 1 if ch == "(" else max(depth - 1, 0) if ch == ")" else depth
        if ch in ",;" and last[i + 1:i + 2] == " " and depth == 0:
            cuts.append(i)
    if not body or (depth == 0 and _FINISHED.search(body)):
        return body
    if depth == 0 and body != text:                # it stopped right after a clause boundary
        return body + "."
    cut = cuts[-1] if cuts else 0
    return body if cut <= 0 else (body[:start] + last[:cut]).rstrip() + "."


def claims(text: str, descriptors: Mapping[str, Descriptor], mgs: MGResult | None = None) -> list[Claim]:
    """Every claim found in ``text``, supported or not, in reading order (``mgs``: also judge
    micro-gesture claims against this detector result)."""
    out: list[Claim] = []
    for index, (s0, s1) in enumerate(sentences(text)):
        out += _sentence_claims(text[s0:s1], s0, index, descriptors, mgs)
    return _consistent(text, out)


def _consistent(text: str, found: list[Claim]) -> list[Claim]:
    """``found`` (in reading order) with every claim about an already claimed quantity marked
    unsupported: ``repeated`` or ``contradictory`` against the first supported claim of it. A word in
    brackets labels a measurement ("slight hand shake (tremor 1.5 mm)"): it is no second claim."""
    first: dict[str, Claim] = {}
    out = []
    for c in found:
        key = None if text.count("(", 0, c.start) > text.count(")", 0, c.start) else c.quantity
        ref = first.get(key) if key else None
        if ref is None:
            if key and c.supported:
                first[key] = c
            out.append(c)
            continue
        issue, verb = ("contradictory", "contradicts") if _opposed(ref, c) else ("repeated", "repeats")
        out.append(replace(c, supported=False, issue=issue,
                           reason=f"{verb} '{ref.text}'" + ("" if c.supported else f"; {c.reason}")))
    return out


def _opposed(a: Claim, b: Claim) -> bool:
    """Two claims of one quantity that cannot both hold: disjoint bands, or a band denied by the other."""
    if a.negated and b.negated:
        return False
    if a.negated or b.negated:
        pos, neg = (b, a) if a.negated else (a, b)
        return set(pos.bands) <= set(neg.bands)
    return not set(a.bands) & set(b.bands)


def _sentence_claims(sentence: str, offset: int, index: int, descriptors: Mapping[str, Descriptor],
                     mgs: MGResult | None = None) -> list[Claim]:
    breaks = [0, *(m.start() for m in _CLAUSE_BREAK.finditer(sentence))]

    def clause(pos: int) -> int:                                  # start of the clause holding pos
        return breaks[bisect.bisect_right(breaks, pos) - 1]

    taken: list[tuple[int, int]] = []                             # spans already claimed

    def free(m: re.Match) -> bool:
        if any(m.start() < b and m.end() > a for a, b in taken):
            return False
        taken.append(m.span())
        return True

    def claim(m: re.Match, verdict: tuple[str | None, bool, str], **kw) -> Claim:
        return Claim(m.group(0), offset + m.start(), offset + m.end(), index, *verdict, **kw)

    def negated(m: re.Match) -> bool:
        return bool(_NEGATION.search(sentence[clause(m.start()):m.start()]))

    out = [] if mgs is None else [
        claim(m, (None, *_judge_mg(term, m, negated(m), mgs)), mg=term.mg, bands=("present",), negated=negated(m))
        for term in MG_TERMS for m in term.pattern.finditer(sentence) if free(m)]
    out += [claim(m, (None, False, f"not observable: {why}"))
            for pattern, why in UNOBSERVABLE for m in pattern.finditer(sentence) if free(m)]
    words = [(m, term) for term in TERMS for m in term.pattern.finditer(sentence) if free(m)]
    for m, term in words:
        verdict = _judge_words(term, negated(m), descriptors)
        out.append(claim(m, verdict, bands=dict(term.options)[verdict[0]], negated=negated(m)))
    for m in filter(free, _NUMBER.finditer(sentence)):
        same_clause = sorted((abs(w.start() - m.start()), i) for i, (w, _) in enumerate(words)
                             if clause(w.start()) == clause(m.start()))
        out.append(claim(m, _judge_number(m, [words[i][1] for _, i in same_clause], descriptors)))
    return sorted(out, key=lambda c: c.start)


def check(explanation: str, descriptors: Mapping[str, Descriptor], mgs: MGResult | None = None) -> list[Claim]:
    """The unsupported claims of ``explanation`` (empty: every claim holds)."""
    return [c for c in claims(explanation, descriptors, mgs) if not c.supported]


def grounding_rate(explanation: str, descriptors: Mapping[str, Descriptor], mgs: MGResult | None = None) -> float:
    """Share of sentences without an unsupported claim (1.0 for an empty text)."""
    spans = sentences(explanation)
    if not spans:
        return 1.0
    bad = {c.sentence for c in check(explanation, descriptors, mgs)}
    return 1.0 - len(bad) / len(spans)


def filter_unsupported(text: str, descriptors: Mapping[str, Descriptor], mode: str = "drop",
                       mgs: MGResult | None = None) -> str:
    """``text`` without its unsupported claims (``mode="flag"``: marked instead). In a sentence of the
    explanation form "<emotion>: <evidence>, <evidence>." only the clauses holding one are dropped
    (the sentence goes when no clause is left, or when the claim is before the colon); any other
    sentence holding one is dropped whole."""
    if mode not in ("drop", "flag"):
        raise ValueError(f"mode must be 'drop' or 'flag', got {mode!r}")
    bad: dict[int, list[Claim]] = {}
    for c in check(text, descriptors, mgs):
        bad.setdefault(c.sentence, []).append(c)
    kept = []
    for index, (s0, s1) in enumerate(sentences(text)):
        sentence = text[s0:s1].strip()
        if index not in bad:
            kept.append(sentence)
        elif mode == "flag":
            kept.append(f"{sentence} [unsupported: {', '.join(c.text for c in bad[index])}]")
        elif rest := _without_clauses(text[s0:s1], [c.start - s0 for c in bad[index]]):
            kept.append(rest)
    return " ".join(kept)


def _without_clauses(sentence: str, at: list[int]) -> str:
    """"<head>: <clause>, <clause>." without the clauses holding the offsets `at`; '' when the
    sentence has no head, an offset falls in it, or no clause is left. Commas inside brackets
    ("(0.4-1.6 s, twice)") do not separate clauses."""
    head = sentence.find(":") + 1
    if head == 0 or min(at) < head:
        return ""
    cuts, depth = [head], 0
    for i in range(head, len(sentence)):
        depth += (sentence[i] == "(") - (sentence[i] == ")")
        if depth == 0 and sentence[i] in ",;":
            cuts.append(i + 1)
    cuts.append(len(sentence))
    keep = [sentence[a:b].strip(" ,;.\n") for a, b in zip(cuts, cuts[1:]) if not any(a <= x < b for x in at)]
    keep = [k for k in keep if k]
    return f"{sentence[:head].strip()} {', '.join(keep)}." if keep else ""


def _judge_words(term: Term, negated: bool, descriptors: Mapping[str, Descriptor]) -> tuple[str, bool, str]:
    """(descriptor, supported, reason) for a word claim; any of the term's options may support it."""
    seen = []
    for name, keys in term.options:
        spec, d = SPECS[name], descriptors[name]
        if not d.valid:
            seen.append(f"{spec.label}: insufficient data")
            continue
        bands = [spec.band_by_key(k) for k in keys]
        if negated:
            ok = not any(b.holds(d.value, -spec.margin) for b in bands)
        else:
            ok = any(b.holds(d.value, spec.margin) for b in bands)
        if ok:
            return name, True, f"measured: {d.phrase}"
        seen.append(f"measured: {d.phrase}")
    wanted = " or ".join(k.split(".")[1].replace("_", " ") for _, keys in term.options for k in keys)
    return term.options[0][0], False, f"claims {'not ' if negated else ''}{wanted}; " + "; ".join(seen)


def _judge_mg(term: MGTerm, m: re.Match, negated: bool, mgs: MGResult) -> tuple[bool, str]:
    """(supported, reason) for a micro-gesture claim against the detector's result."""
    spec, status = MG_VOCABULARY[term.mg], mgs.status(term.mg)
    if status == "not_observable":
        return False, f"{spec.label}: not observable (its joints were not tracked well enough)"
    if status == "unknown":
        return False, f"{spec.label}: not judged by the detector"
    found = mgs.count(term.mg)
    if negated:
        return (not found, f"detected: {spec.past} {count_words(found)}" if found else f"{spec.label}: not detected")
    if not found:
        return False, f"claims {spec.label}; not detected"
    if m.group("count") and stated_count(m.group("count")) != found:
        return False, f"claims {m.group('count')}; detected {count_words(found)}"
    return True, f"detected: {spec.past} {count_words(found)}"


def _dimension(unit: str) -> tuple[str, float]:
    u = unit.lower()
    return _UNITS[u[:-1] if u.endswith("s") and u[:-1] in _UNITS else u]   # "degrees" -> "degree"


def _judge_number(m: re.Match, nearby: list[Term],
                  descriptors: Mapping[str, Descriptor]) -> tuple[str | None, bool, str]:
    """A number with a unit: the nearest same-clause claim of that unit decides, else any descriptor of it."""
    dim, factor = _dimension(m.group(2))
    claimed = float(m.group(1)) * factor                          # magnitude in the base unit
    candidates = [n for n in SPECS if SPECS[n].unit and _dimension(SPECS[n].unit)[0] == dim]
    attributed = next((n for t in nearby for n, _ in t.options if n in candidates), None)
    reasons = []
    for name in [attributed] if attributed else candidates:
        d = descriptors[name]
        if not d.valid:
            reasons.append(f"{SPECS[name].label}: insufficient data")
            continue
        scale = _dimension(d.unit)[1]
        value, said = abs(d.value), claimed / scale               # both in the descriptor's unit
        tol = ANGLE_TOL if d.unit == "°" else max(REL_TOL * value, FLOOR[d.unit])
        if abs(said - value) <= tol:
            return name, True, f"measured: {d.phrase}"
        reasons.append(f"measured {SPECS[name].label} {value:.3g} {d.unit}")
    return attributed, False, f"{m.group(0)} does not match: " + "; ".join(reasons or ["no such measurement"])
