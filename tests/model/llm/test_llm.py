"""SkeletonLLM on the tiny random llama: label scoring, prefix cache, LoRA, generation."""
from __future__ import annotations

import pytest
import torch

from bodytalk.model.constants import DEFAULT_LABELS, EXPLANATION
from bodytalk.model.llm.hf import LLMConfig, SkeletonLLM
from bodytalk.model.llm.prompt import PromptBuilder

DESCRIPTORS = ["walking speed 0.6 m/s; head lowered 25°", "still", "fast jerky arm movements, expanded posture"]


def _skeleton(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 4, 32, generator=torch.Generator().manual_seed(seed))   # [B, S, H]


@pytest.fixture
def prompts(tiny_llm):
    return PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed).build(_skeleton(3), DESCRIPTORS)


@pytest.mark.parametrize("field,value", [("dtype", "float64"), ("lora_r", 0), ("lora_alpha", -1),
                                         ("lora_dropout", 1.0), ("lora_targets", ())])
def test_config_is_validated(field, value):
    with pytest.raises(ValueError, match=field.split("_")[-1] if field != "lora_targets" else "lora_targets"):
        LLMConfig(**{field: value})


def test_answers_end_with_the_chat_templates_end_of_turn(tiny_llm):
    assert tiny_llm.turn_end == "<|im_end|>"
    end_id = tiny_llm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for label in DEFAULT_LABELS:
        ids = tiny_llm.answer_ids(label)
        assert ids[-1] == end_id and tiny_llm.tokenizer.decode(ids[:-1]) == label


def test_label_probabilities_sum_to_one(tiny_llm, prompts):
    with torch.no_grad():
        probs = tiny_llm.score_labels(prompts.inputs_embeds, prompts.attention_mask, DEFAULT_LABELS)
    assert probs.shape == (3, len(DEFAULT_LABELS))
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    assert probs.std(-1).min() > 1e-3          # the random model does prefer some labels


# Labels unknown to the tiny tokenizer split into several byte tokens: that exercises the packed
# multi-token answers; the default labels are one token + end-of-turn there.
@pytest.mark.parametrize("labels", [DEFAULT_LABELS, ("calm", "zzgrumpy", "over the moon", "x")])
def test_cached_batched_scoring_equals_one_full_pass_per_label(tiny_llm, prompts, labels):
    """The KV-cache continuation must give what scoring each prompt+answer from scratch gives."""
    lengths = [len(tiny_llm.answer_ids(label)) for label in labels]
    assert labels == DEFAULT_LABELS or (max(lengths) > 4 and min(lengths) == 2)
    with torch.no_grad():
        fast = tiny_llm.label_log_likelihoods(prompts.inputs_embeds, prompts.attention_mask, labels)
        slow = torch.zeros_like(fast)
        for row in range(3):
            prompt = prompts.inputs_embeds[row, prompts.attention_mask[row].bool()]      # [n, H] unpadded
            for col, label in enumerate(labels):
                answer = torch.tensor(tiny_llm.answer_ids(label))
                embeds = torch.cat([prompt, tiny_llm.embed(answer)])[None]
                logp = tiny_llm.lm(inputs_embeds=embeds).logits[0].log_softmax(-1)      # [n+A, V]
                steps = logp[len(prompt) - 1:-1]                                          # predicts answer[k]
                slow[row, col] = steps.gather(-1, answer[:, None]).sum()
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


def test_scores_do_not_depend_on_batch_composition(tiny_llm, prompts):
    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed)
    skeleton = _skeleton(3)
    with torch.no_grad():
        together = tiny_llm.score_labels(prompts.inputs_embeds, prompts.attention_mask, DEFAULT_LABELS)
        for row in range(3):
            alone = builder.build(skeleton[row:row + 1], DESCRIPTORS[row:row + 1])
            probs = tiny_llm.score_labels(alone.inputs_embeds, alone.attention_mask, DEFAULT_LABELS)
            torch.testing.assert_close(probs[0], together[row], atol=1e-5, rtol=1e-4)


def test_prefix_cache_gives_the_same_scores(tiny_llm, prompts):
    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed)
    part = builder.build(_skeleton(3), DESCRIPTORS, with_prefix=False)
    with torch.no_grad():
        prefix = tiny_llm.cache_prefix(builder.prefix_embeds())
        cached = tiny_llm.score_labels(part.inputs_embeds, part.attention_mask, DEFAULT_LABELS, prefix=prefix)
        again = tiny_llm.score_labels(part.inputs_embeds, part.attention_mask, DEFAULT_LABELS, prefix=prefix)
        full = tiny_llm.score_labels(prompts.inputs_embeds, prompts.attention_mask, DEFAULT_LABELS)
    assert prefix.length == len(builder.prefix_ids)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(again, cached)              # the shared prefix is not consumed by a call
    # Each call's cache holds its own B-fold copy of the prefix: the PrefixCache is only ever read.
    keys = prefix.layers[0][0]
    copied = prefix.expand(3, tiny_llm.lm.config).layers[0].keys
    assert copied.shape[0] == 3 and copied.untyped_storage().data_ptr() != keys.untyped_storage().data_ptr()
    torch.testing.assert_close(copied, keys.expand(3, -1, -1, -1), rtol=0, atol=0)


def test_lora_trains_only_the_adapter(tiny_model_dir):
    llm = SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="float32", lora_r=8,
                                     lora_targets=("q_proj", "v_proj")))
    base = {name: p.clone() for name, p in llm.lm.named_parameters()}
    trainable = llm.add_lora()
    # r * (in + out) per targeted projection per layer: q 32->32, v 32->16 (2 kv heads of 8), 2 layers.
    assert trainable == 2 * 8 * ((32 + 32) + (32 + 16))
    names = [n for n, p in llm.lm.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and (".q_proj." in n or ".v_proj." in n) for n in names)

    llm.train()
    builder = PromptBuilder(llm.tokenizer, llm.embed)
    skeleton = _skeleton(2).requires_grad_(True)
    batch = builder.build(skeleton, DESCRIPTORS[:2])
    logits = llm.label_log_likelihoods(batch.inputs_embeds, batch.attention_mask, DEFAULT_LABELS)
    torch.nn.functional.cross_entropy(logits, torch.tensor([2, 0])).backward()
    assert skeleton.grad is not None and skeleton.grad.abs().sum() > 0    # the projector would train
    grads = {n for n, p in llm.lm.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and grads <= set(names)
    frozen = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
              for n, p in llm.lm.named_parameters() if not p.requires_grad}
    assert all(torch.equal(frozen[n], p) for n, p in base.items())
    with pytest.raises(RuntimeError, match="already"):
        llm.add_lora()


def test_adapter_round_trips_through_a_folder(tiny_model_dir, tiny_llm, prompts, tmp_path):
    tiny_llm.add_lora()
    with torch.no_grad():
        for name, p in tiny_llm.lm.named_parameters():
            if "lora_B" in name:                    # B starts at zero: make the adapter matter
                p.normal_(0, 0.5)
        before = tiny_llm.label_log_likelihoods(prompts.inputs_embeds, prompts.attention_mask, DEFAULT_LABELS)
    tiny_llm.save_adapter(tmp_path / "adapter")
    fresh = SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="float32"))
    with torch.no_grad():
        bare = fresh.label_log_likelihoods(prompts.inputs_embeds, prompts.attention_mask, DEFAULT_LABELS)
        fresh.load_adapter(tmp_path / "adapter")
        after = fresh.label_log_likelihoods(prompts.inputs_embeds, prompts.attention_mask, DEFAULT_LABELS)
    assert not torch.allclose(bare, before, atol=1e-3)
    torch.testing.assert_close(after, before)
    assert fresh.has_adapter and not any(p.requires_grad for p in fresh.lm.parameters())


def test_lora_on_missing_modules_lists_the_real_ones(tiny_model_dir):
    llm = SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="float32", lora_targets=("c_attn",)))
    with pytest.raises(ValueError, match="c_attn.*q_proj"):
        llm.add_lora()


def test_generate_is_greedy_and_batch_independent(tiny_llm):
    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed, EXPLANATION)
    skeleton = _skeleton(2, seed=3)
    batch = builder.build(skeleton, DESCRIPTORS[:2], labels=["sad", "happy"])
    texts = tiny_llm.generate(batch.inputs_embeds, batch.attention_mask, max_new_tokens=8)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    for row in range(2):
        alone = builder.build(skeleton[row:row + 1], DESCRIPTORS[row:row + 1], labels=[["sad", "happy"][row]])
        assert tiny_llm.generate(alone.inputs_embeds, alone.attention_mask, max_new_tokens=8) == [texts[row]]
        if row == 0:
            pieces = list(tiny_llm.generate_stream(alone.inputs_embeds, alone.attention_mask, max_new_tokens=8))
            assert "".join(pieces) == texts[0]
    with pytest.raises(ValueError, match="one window"):
        tiny_llm.generate_stream(batch.inputs_embeds, batch.attention_mask)


def test_generate_after_a_cached_prefix_continues_like_the_whole_prompt(tiny_llm):
    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed, EXPLANATION)
    skeleton = _skeleton(2, seed=4)
    labels = ["sad", "happy"]
    whole = builder.build(skeleton, DESCRIPTORS[:2], labels=labels)
    part = builder.build(skeleton, DESCRIPTORS[:2], labels=labels, with_prefix=False)
    prefix = tiny_llm.cache_prefix(builder.prefix_embeds())
    expected = tiny_llm.generate(whole.inputs_embeds, whole.attention_mask, max_new_tokens=8)
    assert tiny_llm.generate(part.inputs_embeds, part.attention_mask, max_new_tokens=8, prefix=prefix) == expected
    alone = builder.build(skeleton[:1], DESCRIPTORS[:1], labels=labels[:1], with_prefix=False)
    streamed = tiny_llm.generate_stream(alone.inputs_embeds, alone.attention_mask, max_new_tokens=8,
                                 prefix=prefix)
    assert "".join(streamed) == expected[0]
    # The cache is read, never extended: a second call sees the same prefix.
    assert tiny_llm.generate(part.inputs_embeds, part.attention_mask, max_new_tokens=8, prefix=prefix) == expected


def test_real_smollm2_lora_size_and_scores(smollm2_dir):
    llm = SkeletonLLM.load(LLMConfig(base=str(smollm2_dir)))
    assert llm.hidden_size == 576 and llm.dtype == torch.bfloat16
    builder = PromptBuilder(llm.tokenizer, llm.embed)
    batch = builder.build(torch.zeros(2, 8, 576), DESCRIPTORS[:2])
    with torch.no_grad():
        probs = llm.score_labels(batch.inputs_embeds, batch.attention_mask, DEFAULT_LABELS)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert llm.add_lora() == 7_372_800          # r 64 on q/k/v/o of 30 layers: the paper's 7.4M


@pytest.mark.parametrize("text,ready", [("Sad: arms", 9), ("Sad: arms ", 9), ("Sad:\n", 4), ("head 25\ufffd", 7),
                                        ("head 25\ufffd\ufffd", 7), ("", 0), ("   ", 0)])
def test_a_streamed_piece_stops_where_a_later_token_could_change_the_text(text, ready):
    from bodytalk.model.llm.greedy import settled

    assert settled(text) == ready


def test_streamed_greedy_text_is_decoded_on_the_callers_thread_a_token_at_a_time(tiny_llm):
    """greedy.py: no hand-over to a second thread (which would decode at one intra-op thread)."""
    import threading

    builder = PromptBuilder(tiny_llm.tokenizer, tiny_llm.embed, EXPLANATION)
    alone = builder.build(_skeleton(1, seed=5), DESCRIPTORS[:1], labels=["sad"])
    threads, pieces, passes = [], [], []
    hook = tiny_llm.lm.register_forward_hook(lambda *_: threads.append(threading.current_thread()))
    try:
        for piece in tiny_llm.generate_stream(alone.inputs_embeds, alone.attention_mask, max_new_tokens=12):
            pieces.append(piece)
            passes.append(len(threads))                        # passes run when this piece came
    finally:
        hook.remove()
    assert threads and set(threads) == {threading.current_thread()}
    assert len(threads) <= 12                                  # one pass per generated token at most
    assert len(pieces) >= 3 and passes[:-1] == sorted(set(passes[:-1]))   # one piece per token at most
    assert not any(p[-1:].isspace() for p in pieces[:-1])      # whitespace waits for what follows it
    whole = tiny_llm.generate(alone.inputs_embeds, alone.attention_mask, max_new_tokens=12)
    assert "".join(pieces) == whole[0]
