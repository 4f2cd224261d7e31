"""The prompt builder: templates, the splice of skeleton tokens, left padding, the shared prefix."""
from __future__ import annotations

import pytest
import torch

from bodytalk.model.constants import EXPLANATION, RECOGNITION, SKELETON_PLACEHOLDER, PromptTemplate
from bodytalk.model.llm.prompt import PromptBuilder

DESCRIPTORS = ["walking speed 0.6 m/s; head lowered 25°; arms close to the body",
               "still",
               "fast jerky arm movements, expanded posture, trunk leaning forward 12°"]


@pytest.fixture
def builder(tiny_llm):
    return PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed)


def _skeleton(batch: int, n: int = 4, hidden: int = 32) -> torch.Tensor:
    return torch.randn(batch, n, hidden, generator=torch.Generator().manual_seed(batch))


def _text_ids(builder, text: str) -> torch.Tensor:
    return torch.tensor(builder.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_templates_put_the_placeholder_before_the_descriptors():
    for template in (RECOGNITION, EXPLANATION):
        assert template.user.count(SKELETON_PLACEHOLDER) == 1
        assert template.user.index(SKELETON_PLACEHOLDER) < template.user.index("{descriptors}")
    assert EXPLANATION.needs_label and not RECOGNITION.needs_label
    assert "ONLY" in EXPLANATION.system


@pytest.mark.parametrize("system,user,words", [
    ("s", "no placeholder {descriptors}", "exactly once"),
    ("s", f"{{descriptors}} {SKELETON_PLACEHOLDER}", "descriptors"),
    ("s {label}", f"{SKELETON_PLACEHOLDER} {{descriptors}}", "shared prompt prefix"),
    ("s", f"{SKELETON_PLACEHOLDER} {{descriptors}} {{mood}}", "unknown template slots"),
])
def test_bad_templates_are_refused(system, user, words):
    with pytest.raises(ValueError, match=words):
        PromptTemplate(system=system, user=user)


def test_skeleton_tokens_land_where_the_placeholder_was(builder, tiny_llm):
    skeleton = _skeleton(3)
    batch = builder.build(skeleton, DESCRIPTORS)
    for row, (text, where) in enumerate(zip(DESCRIPTORS, batch.skeleton_slices)):
        assert torch.equal(batch.inputs_embeds[row, where], skeleton[row])
        head, tail = builder.split(text)
        head_ids, tail_ids = _text_ids(builder, head), _text_ids(builder, tail)
        # The text on either side of the splice is exactly the chat text around the placeholder.
        assert torch.equal(batch.inputs_embeds[row, where.start - len(head_ids):where.start], tiny_llm.embed(head_ids))
        assert torch.equal(batch.inputs_embeds[row, where.stop:], tiny_llm.embed(tail_ids))
        assert where.stop + len(tail_ids) == batch.inputs_embeds.shape[1]


def test_batch_is_left_padded_with_a_matching_mask(builder):
    batch = builder.build(_skeleton(3), DESCRIPTORS)
    lengths = [len(builder.prefix_ids) + 4 + len(_text_ids(builder, builder.split(t)[1])) for t in DESCRIPTORS]
    assert len(set(lengths)) == 3                      # the descriptor texts really differ in length
    assert batch.attention_mask.shape == (3, max(lengths))
    for row, n in enumerate(lengths):
        mask = batch.attention_mask[row]
        assert mask.sum() == n
        assert torch.all(mask[-n:] == 1) and torch.all(mask[:-n] == 0)   # padding only on the left


def test_prefix_is_shared_and_can_be_left_out(builder):
    skeleton = _skeleton(3)
    full = builder.build(skeleton, DESCRIPTORS)
    part = builder.build(skeleton, DESCRIPTORS, with_prefix=False)
    prefix = builder.prefix_embeds()
    assert builder.prefix_text.endswith("Skeleton: ") and SKELETON_PLACEHOLDER not in builder.prefix_text
    for row in range(3):
        start = full.skeleton_slices[row].start
        assert torch.equal(full.inputs_embeds[row, start - len(prefix):start], prefix)
        # Without the prefix, a row is the same tokens minus the prefix.
        n = int(part.attention_mask[row].sum())
        assert torch.equal(part.inputs_embeds[row, -n:], full.inputs_embeds[row, -n:])
        assert int(full.attention_mask[row].sum()) == n + len(prefix)
        assert torch.equal(part.inputs_embeds[row, part.skeleton_slices[row]], skeleton[row])


def test_explanation_prompt_names_the_label(tiny_llm):
    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed, EXPLANATION)
    assert "Emotion: sad<|im_end|>" in builder.split(DESCRIPTORS[0], "sad")[1]
    with pytest.raises(ValueError, match="labels="):
        builder.build(_skeleton(1), DESCRIPTORS[:1])
    batch = builder.build(_skeleton(2), DESCRIPTORS[:2], labels=["sad", "angry"])
    assert batch.inputs_embeds.shape[0] == 2
    # The start of the answer goes after the generation prompt, for the model to continue.
    opened = builder.build(_skeleton(2), DESCRIPTORS[:2], labels=["sad", "angry"], answers=["Sad movement:", "x"])
    ids = tiny_llm.tokenizer("Sad movement:", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(opened.inputs_embeds[0, -len(ids):], tiny_llm.embed(torch.tensor(ids)))
    with pytest.raises(ValueError, match="2 windows"):
        builder.build(_skeleton(2), DESCRIPTORS[:2], labels=["sad", "angry"], answers=["Sad movement:"])


def test_bad_inputs_say_what_is_wrong(builder):
    with pytest.raises(ValueError, match="3 descriptor texts"):
        builder.build(_skeleton(3), DESCRIPTORS[:2])
    with pytest.raises(ValueError, match="must not contain"):
        builder.build(_skeleton(1), [f"arms up {SKELETON_PLACEHOLDER}"])


def test_gradients_reach_the_skeleton_tokens(builder):
    skeleton = _skeleton(2).requires_grad_(True)
    builder.build(skeleton, DESCRIPTORS[:2]).inputs_embeds.sum().backward()
    assert torch.all(skeleton.grad == 1)


def test_real_smollm2_template_splits_once(smollm2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    builder = PromptBuilder(tokenizer, lambda ids: torch.zeros(*ids.shape, 8))
    head, tail = builder.split(DESCRIPTORS[0])
    assert head.startswith("<|im_start|>system\n") and tail.endswith("<|im_start|>assistant\n")
    assert DESCRIPTORS[0] in tail
