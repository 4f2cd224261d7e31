"""The in-process vLLM engine against the transformers backend on the same untrained checkpoint (real
SmolLM2, float32): label probabilities, explanations, streaming. One engine load for the module."""
from __future__ import annotations

import threading

import pytest
import torch

from bodytalk.model.text import grounding
from bodytalk.model.llm.hf import SkeletonLLM
from bodytalk.model.llm.vllm import VLLMSkeletonLLM
from tests.vllm.conftest import PROB_TOL, assert_same_readings, emotion_model, windows

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def models(model_cfg):
    """(vLLM, transformers) EmotionModels around the same encoder, projector and base LLM."""
    engine = VLLMSkeletonLLM.load(model_cfg.llm)
    yield emotion_model(model_cfg, engine), emotion_model(model_cfg, SkeletonLLM.load(model_cfg.llm))
    engine.close()


def test_label_probabilities_sum_to_one_and_match_transformers(models):
    ours, theirs = models
    wins = windows(4)
    readings = ours.recognise(wins, path="llm")
    assert_same_readings(readings, theirs.recognise(wins, path="llm"))
    spread = [max(r.probs.values()) - min(r.probs.values()) for r in readings]
    assert min(spread) > 0.05          # the untrained model prefers some labels: the comparison means something


@pytest.mark.parametrize("scoring", ["constrained", "answer"])
def test_both_label_readings_match_transformers_where_labels_share_tokens(models, scoring):
    """"sad" and "sadness" share two tokens on SmolLM2: the trie's deeper decisions become requests."""
    ours, theirs = models
    labels = ("sad", "sadness", "surprised", "neutral")
    p = theirs.prepare(windows(3, seed=5))
    _, tokens = theirs.encode(p)
    texts = [theirs.evidence_line(d, g) for d, g in zip(p.evidence, p.mgs)]
    probs = []
    for m in (ours, theirs):
        batch = m._builder("recognise").build(tokens, texts, with_prefix=False)
        probs.append(m.llm.score_labels(batch.inputs_embeds, batch.attention_mask, labels,
                                        m._prefix("recognise"), scoring))
    assert ours.llm.label_trie(labels, scoring).rows                      # answer tokens were fed
    torch.testing.assert_close(probs[0], probs[1], atol=PROB_TOL, rtol=0)


def test_a_window_reads_the_same_alone_and_in_a_batch(models):
    """Left padding is stripped per row: a window's probabilities do not depend on its batch."""
    ours, _ = models
    wins = windows(3, seed=1)
    alone = ours.recognise(wins[1:2], path="llm")[0].probs
    batched = ours.recognise(wins, path="llm")[1].probs
    assert max(abs(alone[k] - batched[k]) for k in alone) < 1e-4


def test_explanations_are_generated_from_prompt_embeddings(models):
    """Greedy text from the same embeddings in float32: the same words as transformers."""
    ours, theirs = models
    wins, labels = windows(2, seed=2), ["sad", "happy"]
    got = ours.explain(wins, labels, max_new_tokens=20, drop_unsupported=False)
    want = theirs.explain(wins, labels, max_new_tokens=20, drop_unsupported=False)
    assert all(text.strip() for text, _ in got)
    assert [text for text, _ in got] == [text for text, _ in want]


def test_streamed_pieces_join_into_the_explanation(models):
    ours, _ = models
    window = windows(1, seed=2)[0]
    pieces = list(ours.explain_stream(window, "sad", max_new_tokens=20))
    (text, _), = ours.explain([window], ["sad"], max_new_tokens=20, drop_unsupported=False)
    # explain() trims a clause cut off by the token limit; the raw pieces are not trimmed
    assert len(pieces) > 1 and grounding.trim_unfinished("".join(pieces).strip()) == text


def test_labels_and_a_streamed_explanation_on_two_threads(models):
    """The server labels on one thread while another streams an explanation: the engine batches both,
    and each caller gets its own answers."""
    ours, _ = models
    wins = windows(3, seed=3)
    alone = ours.recognise(wins, path="llm")
    pieces: list[str] = []
    explainer = threading.Thread(target=lambda: pieces.extend(ours.explain_stream(wins[0], "sad", max_new_tokens=20)))
    explainer.start()
    together = [ours.recognise(wins, path="llm") for _ in range(2)]
    explainer.join(timeout=300)
    (text, _), = ours.explain([wins[0]], ["sad"], max_new_tokens=20, drop_unsupported=False)
    assert grounding.trim_unfinished("".join(pieces).strip()) == text     # explain() trims a cut-off clause
    for readings in together:
        for a, b in zip(readings, alone):
            assert a.label == b.label and max(abs(a.probs[k] - b.probs[k]) for k in a.probs) < 1e-4
