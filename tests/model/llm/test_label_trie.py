"""LabelTrie: which answer positions each reading needs, the per-label sums, and both readings through
the tiny llama against scoring every prompt + answer path on its own."""
from __future__ import annotations

import math

import pytest
import torch

from bodytalk.model.llm.label_trie import LabelTrie
from bodytalk.model.llm.prompt import PromptBuilder

# Four answers ending in the end-of-turn 9; two share their first token 7.
ANSWERS = [[5, 9], [6, 9], [7, 8, 9], [7, 3, 9]]


def test_constrained_reads_only_where_answers_part_ways():
    trie = LabelTrie(ANSWERS, "constrained")
    assert trie.decisions == [(), (7,)]
    assert trie.choices == [[5, 6, 7], [8, 3]]
    assert trie.rows == [(7,)]                               # the one answer token fed to the model
    assert trie.decision_at.tolist() == [0, 1]
    assert trie.row_inputs.tolist() == [7] and trie.row_steps.tolist() == [0]


def test_answer_reads_every_answer_position():
    trie = LabelTrie(ANSWERS, "answer")
    assert trie.decisions == [(), (5,), (6,), (7,), (7, 8), (7, 3)]
    assert trie.rows == [(5,), (6,), (7,), (7, 8), (7, 3)]
    assert trie.row_steps.tolist() == [0, 0, 0, 1, 1]
    # (7, 8) sees itself and (7,), not its sibling (7, 3) nor the other labels' rows.
    assert trie.row_sees[3].tolist() == [False, False, True, True, False]
    assert trie.decision_at.tolist() == [0, 1, 2, 3, 4, 5]


def test_distinct_first_tokens_need_no_answer_rows():
    trie = LabelTrie([[1, 9], [2, 9], [3, 4, 9]], "constrained")
    assert trie.decisions == [()] and trie.rows == [] and trie.row_sees.shape == (0, 0)


def test_constrained_scores_are_the_products_of_the_choices():
    trie = LabelTrie(ANSWERS, "constrained")
    logits = torch.tensor([[[1.0, 2.0, 0.5], [0.3, -1.0, 99.0]]])          # [B=1, D=2, C=3]; 99 is padding
    scores = trie.combine(logits)
    root = logits[0, 0].log_softmax(-1)
    node = logits[0, 1, :2].log_softmax(-1)
    expected = torch.stack([root[0], root[1], root[2] + node[0], root[2] + node[1]])
    torch.testing.assert_close(scores[0], expected)
    assert math.isclose(scores.exp().sum().item(), 1.0, rel_tol=1e-6)      # already normalised


def test_answer_scores_sum_log_probabilities_along_each_path():
    trie = LabelTrie([[5, 9], [7, 8, 9]], "answer")
    # decisions: (), (5,), (7,), (7, 8); choices: [5, 7], [9], [8], [9]
    logp = torch.log(torch.tensor([[[0.2, 0.3], [0.9, 0.0], [0.5, 0.0], [0.8, 0.0]]]))
    torch.testing.assert_close(trie.combine(logp)[0], torch.log(torch.tensor([0.2 * 0.9, 0.3 * 0.5 * 0.8])))


def test_one_label_is_certain():
    trie = LabelTrie([[4, 9]], "constrained")
    assert trie.decisions == [] and trie.combine(torch.zeros(2, 0, 1)).softmax(-1).tolist() == [[1.0], [1.0]]


@pytest.mark.parametrize("answers,scoring,match", [
    ([[5, 9], [5, 9]], "answer", "start of another"),
    ([[5], [5, 9]], "constrained", "start of another"),
    ([[5, 9], []], "answer", "non-empty"),
    ([], "answer", "non-empty"),
    ([[5, 9]], "sampled", "scoring must be"),
])
def test_bad_label_sets_are_refused(answers, scoring, match):
    with pytest.raises(ValueError, match=match):
        LabelTrie(answers, scoring)


# "zzgrumpy" and "zzgloomy" share two tokens on the tiny tokenizer; "sad" is the start of "sadness".
LABELS = ("zzgrumpy", "zzgloomy", "sad", "sadness", "x")


@pytest.mark.parametrize("scoring", ["constrained", "answer"])
def test_one_pass_equals_scoring_every_path_alone(tiny_llm, scoring):
    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed)
    skeleton = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(3))
    prompts = builder.build(skeleton, ["head lowered 25°", "arms wide"])
    trie = tiny_llm.label_trie(LABELS, scoring)
    assert trie.rows, "the label set must make the pass feed answer tokens"
    with torch.no_grad():
        fast = tiny_llm.label_log_likelihoods(prompts.inputs_embeds, prompts.attention_mask, LABELS, scoring=scoring)
        slow = torch.zeros_like(fast)
        for row in range(2):
            prompt = prompts.inputs_embeds[row, prompts.attention_mask[row].bool()]      # [n, H]
            for col, label in enumerate(LABELS):
                ids = tiny_llm.answer_ids(label)
                for k, token in enumerate(ids):
                    siblings = {a[k] for a in map(tiny_llm.answer_ids, LABELS) if a[:k] == ids[:k]}
                    if scoring == "constrained" and len(siblings) == 1:
                        continue                                  # nothing decided at this node
                    embeds = torch.cat([prompt, tiny_llm.embed(torch.tensor(ids[:k], dtype=torch.long))])[None]
                    logits = tiny_llm.lm(inputs_embeds=embeds).logits[0, -1]             # [V]
                    pool = sorted(siblings) if scoring == "constrained" else slice(None)
                    logp = logits[pool].log_softmax(-1)
                    slow[row, col] += logp[sorted(siblings).index(token)] if scoring == "constrained" else logp[token]
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
    probs = tiny_llm.score_labels(prompts.inputs_embeds, prompts.attention_mask, LABELS, scoring=scoring)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
