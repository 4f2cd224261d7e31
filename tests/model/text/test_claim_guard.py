"""Grounded decoding (text.claim_guard): whatever the model prefers among the allowed tokens, the
explanation is its window's measured phrases, none twice, within the token budget; and both decoders
(whole and streamed) obey the guard and agree."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bodytalk.model.skeleton import descriptors as desc
from bodytalk.model.text import evidence_text, grounding
from bodytalk.model.text.claim_guard import ClaimGuard
from tests.model.motions import random_motion


def _descriptors(seed: int) -> desc.Descriptors:
    return desc.compute(*random_motion(np.random.default_rng(seed)), fps=30.0)


def _walk(guard, stops, rng, limit: int = 200) -> list[int]:
    """Decode by picking a random allowed token each step (any model's choices), until a stop."""
    ids: list[int] = []
    for _ in range(limit):
        allowed = sorted(guard(ids))
        token = int(rng.choice(allowed))
        if token in stops:
            return ids
        ids.append(token)
    raise AssertionError("the guard never allowed only the end")


@pytest.mark.parametrize("seed", range(6))
def test_any_choice_among_the_allowed_tokens_is_grounded(tiny_llm, seed):
    tok, stops = tiny_llm.tokenizer, set(tiny_llm.stop_ids)
    d = _descriptors(seed)
    phrases = evidence_text.citable(d)
    budget = 40 if seed % 2 else 24
    guard = ClaimGuard(tok, sorted(stops), max_claims=3).for_window(phrases, budget)
    ids = _walk(guard, stops, np.random.default_rng(seed))
    assert 0 < len(ids) <= budget
    text = tok.decode(ids)
    assert text.endswith(".")
    claims = [c.strip() for c in text[:-1].replace(";", ",").split(",")]   # phrases hold no "," here
    assert all(c in phrases for c in claims) and len(set(claims)) == len(claims) <= 3
    full = evidence_text.opening("sad") + text
    assert grounding.check(full, d) == []


@pytest.mark.parametrize("seed", range(4))
def test_a_lead_makes_the_first_claim_one_of_the_first_phrases(tiny_llm, seed):
    tok, stops = tiny_llm.tokenizer, set(tiny_llm.stop_ids)
    phrases = evidence_text.citable(_descriptors(seed))
    guard = ClaimGuard(tok, sorted(stops)).for_window(phrases, 40, lead=2)
    for walk in range(8):   # random choices among the allowed tokens: any model
        text = tok.decode(_walk(guard, stops, np.random.default_rng((seed, walk))))
        claims = [c.strip() for c in text[:-1].replace(";", ",").split(",")]
        assert claims[0] in phrases[:2] and set(claims) <= set(phrases)
    unled = ClaimGuard(tok, sorted(stops)).for_window(phrases, 40, lead=0)   # 0 or None: no lead
    assert {tok.decode(_walk(unled, stops, np.random.default_rng((seed, w)))).split(",")[0].split(";")[0].strip(" .")
            for w in range(12)} - set(phrases[:2])


def test_no_phrase_means_no_guard_and_a_spent_budget_ends_the_text(tiny_llm):
    guard = ClaimGuard(tiny_llm.tokenizer, tiny_llm.stop_ids)
    assert guard.for_window([], 40) is None
    tight = guard.for_window(["hands nearly still (0.03 m/s)"], 3)     # the phrase alone is longer
    assert tight([]) == set(tiny_llm.stop_ids)


def test_both_decoders_obey_the_guard_and_agree(tiny_llm):
    torch.manual_seed(0)
    embeds = torch.randn(2, 5, tiny_llm.hidden_size)
    mask = torch.ones(2, 5, dtype=torch.long)
    phrases = evidence_text.citable(_descriptors(3))
    guard = ClaimGuard(tiny_llm.tokenizer, tiny_llm.stop_ids).for_window(phrases, 30)
    texts = tiny_llm.generate(embeds, mask, max_new_tokens=30, allowed=[guard, None])
    claims = [c.strip() for c in texts[0].rstrip(".").replace(";", ",").split(",")]
    assert texts[0].endswith(".") and all(c in phrases for c in claims)
    alone = "".join(tiny_llm.generate_stream(embeds[:1], mask[:1], max_new_tokens=30, allowed=guard))
    assert alone == texts[0]
    free = tiny_llm.generate(embeds[1:], mask[1:], max_new_tokens=30)[0]
    assert free == texts[1]                          # an unguarded row decodes as without the guard


def test_served_explanations_are_the_windows_reasons_for_their_label(tiny_emotion_model):
    from bodytalk.model.skeleton.features import WindowInput
    model = tiny_emotion_model(0)
    rng = np.random.default_rng(0)
    wins = [WindowInput(*random_motion(rng), fps=30.0, layout="kinect_v2") for _ in range(3)]
    labels = ["sad", "happy", "angry"]
    for w, label, (text, bad) in zip(wins, labels, model.explain(wins, labels, drop_unsupported=False)):
        assert bad == [] and text.endswith(".")
        d = desc.compute(w.joints, w.confidence, w.fps)
        claims = [c.strip() for c in text.split(":", 1)[1].rstrip(".").replace(";", ",").split(",")]
        # Every claim is one of the label's reasons in this window, not any true phrase of it.
        assert claims and set(claims) <= set(evidence_text.citable(d, label=label)), (label, text)
        assert set(evidence_text.citable(d, label=label)) < set(evidence_text.citable(d))
