"""Int8 decoding copies (model/decode_int8.py): close to the weights they copy (LoRA delta included),
used only for few-row inputs without gradients, invisible to state dicts, and removable."""
from __future__ import annotations

import pytest
import torch

from bodytalk.model import decode_int8
from bodytalk.model.llm import LLMConfig, SkeletonLLM


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
    n = decode_int8.enable(llm.lm)
    layers = _layers(llm)
    # 2 layers x (4 LoRA-wrapped attention projections + 3 MLP linears) + the output head.
    assert n == len(layers) == 2 * (4 + 3) + 1
    assert not any(name.endswith(("lora_A.default", "lora_B.default", "base_layer"))
                   for name, m in llm.lm.named_modules() if hasattr(m, "int8_max_rows"))
    torch.manual_seed(1)
    with torch.no_grad():
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
    decode_int8.enable(llm.lm, max_rows=4)
    module = _layers(llm)[0]
    exact = type(module).forward
    x = torch.randn(1, 5, module.int8_weight.shape[1]).bfloat16()
    with torch.no_grad():
        assert torch.equal(module(x), exact(module, x))             # 5 rows > 4
        assert not torch.equal(module(x[:, :4]), exact(module, x[:, :4]))
    with torch.enable_grad():
        assert torch.equal(module(x[:, :1]), exact(module, x[:, :1]))
    module.train()                                                  # LoRA dropout: same seed for both
    with torch.no_grad():
        torch.manual_seed(2)
        trained = module(x[:, :1])
        torch.manual_seed(2)
        assert torch.equal(trained, exact(module, x[:, :1]))


def test_state_dicts_and_adapters_are_unchanged(bf16_lora_llm, tmp_path):
    llm = bf16_lora_llm
    before = {k: v.clone() for k, v in llm.lm.state_dict().items()}
    decode_int8.enable(llm.lm)
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
    decode_int8.enable(llm.lm)
    assert len(llm.generate(embeds, mask, max_new_tokens=6)) == 1   # decodes through the copies
    decode_int8.disable(llm.lm)
    assert not _layers(llm)
    assert llm.generate(embeds, mask, max_new_tokens=6) == reference


def test_float32_models_and_bad_settings(tiny_llm):
    assert decode_int8.enable(tiny_llm.lm) == 0                     # the int8 kernel takes bf16 inputs
    assert not _layers(tiny_llm)
    with pytest.raises(ValueError, match="max_rows"):
        decode_int8.enable(tiny_llm.lm, max_rows=0)
