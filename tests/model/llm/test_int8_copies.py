"""Int8 copies (model/llm/int8_copies.py): close to the weights they copy (LoRA delta included); the
weight-only kind only inside generation for few-row inputs, the dynamic kind for longer inputs and
label scoring (never on the down projection); never with gradients; only on layers whose weight they
can reproduce; invisible to state dicts; removable."""
from __future__ import annotations

import pytest
import torch

from bodytalk.model.llm import int8_copies
from bodytalk.model.llm.hf import LLMConfig, SkeletonLLM


@pytest.fixture
def bf16_lora_llm(tiny_model_dir):
    llm = SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="bfloat16", lora_r=8))
    llm.add_lora()
    llm.eval()
    with torch.no_grad():
        for name, p in llm.lm.named_parameters():
            if "lora_B" in name:            # B starts at zero: make the adapter change the outputs
                p.normal_(0, 0.5)
    return llm


def _layers(llm):
    return [m for m in llm.lm.modules() if hasattr(m, "int8_max_rows")]


def _relative_error(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_copies_cover_lora_and_plain_layers_and_match_them(bf16_lora_llm):
    llm = bf16_lora_llm
    plain = {id(m): type(m).forward for m in llm.lm.modules()}
    n = int8_copies.enable(llm.lm)
    layers = _layers(llm)
    # 2 layers x (4 LoRA-wrapped attention projections + 3 MLP linears) + the output head.
    assert n == len(layers) == 2 * (4 + 3) + 1
    assert not any(name.endswith(("lora_A.default", "lora_B.default", "base_layer"))
                   for name, m in llm.lm.named_modules() if hasattr(m, "int8_max_rows"))
    torch.manual_seed(1)
    with torch.no_grad(), int8_copies.decoding():
        for module in layers:
            features = module.int8_weight.shape[1]
            x = torch.randn(1, 3, features).bfloat16()               # 3 rows: the int8 path
            fast = module(x)
            exact = plain[id(module)](module, x)
            assert fast.shape == exact.shape
            assert _relative_error(fast, exact) < 0.03
            if hasattr(module, "get_base_layer"):                    # the adapter's delta is in the copy
                base_only = module.get_base_layer()(x)
                assert _relative_error(base_only, exact) > 0.1


def test_long_inputs_gradients_and_training_take_the_exact_weights(bf16_lora_llm):
    llm = bf16_lora_llm
    int8_copies.enable(llm.lm, max_rows=4, dynamic=False)
    module = _layers(llm)[0]
    exact = type(module).forward
    x = torch.randn(1, 5, module.int8_weight.shape[1]).bfloat16()
    with torch.no_grad():
        assert torch.equal(module(x[:, :4]), exact(module, x[:, :4]))   # outside generation
    with torch.no_grad(), int8_copies.decoding():
        assert torch.equal(module(x), exact(module, x))             # 5 rows > 4
        assert not torch.equal(module(x[:, :4]), exact(module, x[:, :4]))
        columns = torch.randn(x.shape[-1], 2).bfloat16().t()        # last dim not contiguous: the
        assert torch.equal(module(columns), exact(module, columns))  # kernel would raise on it
    with torch.enable_grad(), int8_copies.decoding():
        assert torch.equal(module(x[:, :1]), exact(module, x[:, :1]))
    module.train()                                                  # LoRA dropout: same seed for both
    with torch.no_grad(), int8_copies.decoding():
        torch.manual_seed(2)
        trained = module(x[:, :1])
        torch.manual_seed(2)
        assert torch.equal(trained, exact(module, x[:, :1]))


def test_state_dicts_and_adapters_are_unchanged(bf16_lora_llm, tmp_path):
    llm = bf16_lora_llm
    before = {k: v.clone() for k, v in llm.lm.state_dict().items()}
    int8_copies.enable(llm.lm)
    after = llm.lm.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    llm.save_adapter(tmp_path / "adapter")                        # peft saves as if nothing happened
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_disable_restores_the_plain_forward(bf16_lora_llm):
    llm = bf16_lora_llm
    ids = llm.tokenizer("walking speed 0.6 m/s; head lowered 25 degrees", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        embeds = llm.embed(ids)                                        # [1, N, H]
    mask = torch.ones_like(ids)
    reference = llm.generate(embeds, mask, max_new_tokens=6)
    int8_copies.enable(llm.lm)
    assert len(llm.generate(embeds, mask, max_new_tokens=6)) == 1   # decodes through the copies
    int8_copies.disable(llm.lm)
    assert int8_copies.score_dtype(llm.lm) == torch.bfloat16
    assert not _layers(llm)
    assert llm.generate(embeds, mask, max_new_tokens=6) == reference


def test_float32_models_and_bad_settings(tiny_llm):
    assert int8_copies.enable(tiny_llm.lm) == 0                     # the int8 kernel takes bf16 inputs
    assert not _layers(tiny_llm)
    with pytest.raises(ValueError, match="max_rows"):
        int8_copies.enable(tiny_llm.lm, max_rows=0)


def _force_int8_head(llm, token: str) -> int:
    """Make the output head's int8 copy predict `token` whatever the input, so any use of it shows."""
    head = llm.lm.get_output_embeddings()
    token_id = llm.tokenizer.convert_tokens_to_ids(token)
    head.int8_scales.zero_()
    head.int8_bias = torch.zeros(head.int8_weight.shape[0], dtype=torch.bfloat16)
    head.int8_bias[token_id] = 100.0
    return token_id


def _label_setup(llm):
    labels = ("neutral", "x", "y")
    assert all(len(llm.answer_ids(label)) == 2 for label in labels)   # one token + end-of-turn
    ids = llm.tokenizer("still", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        embeds = llm.embed(ids)                                        # [1, 5, H]: 5 + 3 rows
    return labels, embeds, torch.ones_like(ids)


def test_label_scores_never_use_the_weight_only_copies_generation_does(bf16_lora_llm):
    """3 single-token labels and 1 window: the head sees 1 + 3 rows, as few as a decoding step, yet
    label scoring does not take the weight-only copies (without dynamic copies its scores are
    exact); generation, streamed (on its own thread) or not, decodes through them."""
    llm = bf16_lora_llm
    labels, embeds, mask = _label_setup(llm)
    with torch.no_grad():
        prefix = llm.cache_prefix(embeds[0])
        before = llm.label_log_likelihoods(embeds, mask, labels)
        cached = llm.label_log_likelihoods(embeds, mask, labels, prefix=prefix)
    int8_copies.enable(llm.lm, dynamic=False)
    assert int8_copies.score_dtype(llm.lm) == torch.bfloat16     # no dynamic copies: the model's dtype
    _force_int8_head(llm, "neutral")
    with torch.no_grad():
        assert torch.equal(llm.label_log_likelihoods(embeds, mask, labels), before)
        assert torch.equal(llm.label_log_likelihoods(embeds, mask, labels, prefix=prefix), cached)
        assert torch.equal(llm.cache_prefix(embeds[0]).layers[0][0], prefix.layers[0][0])
    assert llm.generate(embeds, mask, max_new_tokens=3) == ["neutral" * 3]
    assert "".join(llm.generate_stream(embeds, mask, max_new_tokens=3)) == "neutral" * 3


@pytest.mark.skipif(not int8_copies.dynamic_available(), reason="torch has no fbgemm/x86 quantized engine")
def test_dynamic_copies_serve_label_scoring_and_long_inputs_but_not_the_down_projection(bf16_lora_llm):
    llm = bf16_lora_llm
    labels, embeds, mask = _label_setup(llm)
    with torch.no_grad():
        exact = llm.score_labels(embeds, mask, labels)
    assert int8_copies.enable(llm.lm) == 2 * (4 + 3) + 1
    dynamic = {name for name, m in llm.lm.named_modules() if getattr(m, "int8_packed", None) is not None}
    assert len(dynamic) == 2 * (4 + 2) + 1 and not any(name.endswith("down_proj") for name in dynamic)
    # Every linear layer has copies: scoring feeds float32 (the exact down projections take bf16 inside).
    assert int8_copies.score_dtype(llm.lm) == torch.float32
    _force_int8_head(llm, "neutral")                    # the weight-only head would now say "neutral"
    with torch.no_grad():
        fast = llm.score_labels(embeds, mask, labels)
    assert torch.allclose(fast.sum(-1), torch.ones(1)) and (fast - exact).abs().max() < 0.1   # random tiny model
    assert not torch.equal(fast, exact)                 # computed through the dynamic copies
    torch.manual_seed(3)
    for name, module in llm.lm.named_modules():
        if hasattr(module, "int8_max_rows"):
            x = torch.randn(1, 12, module.int8_weight.shape[1]).bfloat16()   # 12 rows > max_rows
            plain = type(module).forward(module, x)
            for mode in (int8_copies.decoding, int8_copies.scoring):
                with torch.no_grad(), mode():
                    y = module(x)
                if name.endswith("down_proj"):
                    assert torch.equal(y, plain)
                else:
                    assert 0 < _relative_error(y, plain) < 0.05


def _peft_llm(tiny_model_dir, **lora):
    from peft import get_peft_model

    llm = SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="bfloat16"))
    llm.lm = get_peft_model(llm.lm, _config(**lora)).eval()
    return llm


def _config(kind="lora", **settings):
    import peft

    if kind == "ia3":
        return peft.IA3Config(target_modules=["q_proj", "v_proj"], feedforward_modules=[],
                              task_type="CAUSAL_LM")
    return peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", **settings)


@pytest.mark.parametrize("settings", [{"use_dora": True}, {"lora_bias": True}, {"kind": "ia3"}])
def test_other_tuner_layers_keep_their_exact_forward(tiny_model_dir, settings):
    from peft.tuners.tuners_utils import BaseTunerLayer

    llm = _peft_llm(tiny_model_dir, **settings)
    # The untuned linears (and the head) still get copies; the tuners and their base layers do not.
    assert int8_copies.enable(llm.lm) == 2 * (7 - 2) + 1
    assert not [name for name, m in llm.lm.named_modules()
                if hasattr(m, "int8_max_rows") and any(t in name for t in ("q_proj", "v_proj"))]
    tuned = [m for m in llm.lm.modules() if isinstance(m, BaseTunerLayer)]
    assert len(tuned) == 4 and not any(int8_copies.foldable(m) for m in tuned)


def test_only_vanilla_lora_over_a_plain_linear_is_foldable(tiny_model_dir):
    llm = _peft_llm(tiny_model_dir)
    lora = [m for m in llm.lm.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A")]
    assert len(lora) == 4 and all(int8_copies.foldable(m) for m in lora)
    lora[0].fan_in_fan_out = True                                   # weights stored [in, out]
    assert not int8_copies.foldable(lora[0])


def test_fan_in_fan_out_layers_keep_their_exact_forward():
    """GPT-2 stores its weights transposed (Conv1D); peft's LoRA there sets fan_in_fan_out."""
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    lm = get_peft_model(lm.to(torch.bfloat16), LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True))
    assert int8_copies.enable(lm.eval()) == 1                       # the output head only
    assert hasattr(lm.get_output_embeddings(), "int8_max_rows")


@pytest.mark.skipif(not int8_copies.dynamic_available(), reason="torch has no fbgemm/x86 quantized engine")
def test_calibrate_command_records_maxima_that_load_smooths_the_down_projection_with(tiny_model_dir, tmp_path):
    """`bodytalk model calibrate CKPT` stores the down projections' input maxima in the checkpoint;
    EmotionModel.load then gives those layers smoothed dynamic copies, and labels stay close."""
    import numpy as np

    from bodytalk.model.serving import inspect as model_cli
    from bodytalk.model.checkpoint import ModelConfig
    from bodytalk.model.skeleton.features import WindowInput
    from bodytalk.model.inference import EmotionModel
    from tests.model.motions import random_motion

    llm = SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="bfloat16"))
    # The whole-answer reading: over a random model's few-percent label mass, constrained decoding's
    # ratios of first-token probabilities swing with any rounding; the trained demo's are measured.
    cfg = ModelConfig.create(hidden=llm.hidden_size, llm={"base": str(tiny_model_dir), "dtype": "bfloat16",
                                                          "label_scoring": "answer"})
    EmotionModel.untrained(cfg, llm=llm, seed=1).save(tmp_path / "ck")
    assert int8_copies.load_calibration(tmp_path / "ck") is None
    assert model_cli.main(["calibrate", str(tmp_path / "ck"), "--windows", "4"]) == 0
    maxima = int8_copies.load_calibration(tmp_path / "ck")
    assert len(maxima) == 2 and all(name.endswith("down_proj") for name in maxima)
    assert all(v.shape == (64,) and bool((v > 0).all()) for v in maxima.values())   # intermediate size 64

    calibrated, exact = EmotionModel.load(tmp_path / "ck"), EmotionModel.load(tmp_path / "ck", int8=False)
    downs = [m for name, m in calibrated.llm.lm.named_modules() if name.endswith("down_proj")]
    assert len(downs) == 2 and all(m.int8_packed is not None and m.int8_smooth is not None for m in downs)
    rng = np.random.default_rng(4)
    wins = [WindowInput(*random_motion(rng), fps=30.0, layout="kinect_v2") for _ in range(6)]
    pairs = [(a, b) for a, b in zip(calibrated.recognise(wins, "llm"), exact.recognise(wins, "llm"))
             if a.status == "ok"]                      # random motions may lack confident frames
    assert len(pairs) >= 3
    for a, b in pairs:
        assert sum(a.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(abs(a.probs[k] - b.probs[k]) for k in a.probs) < 0.1             # random tiny model
    assert model_cli.main(["calibrate", str(tmp_path / "ck"), "--windows", "0"]) == 2
