"""Shared test fixtures: the optional shared data sets beside the checkout, and a tiny random llama with a
tiny byte-level BPE tokenizer and a ChatML chat template, saved as an ordinary Hugging Face folder, so the
LLM tests run in seconds without the real weights. Tests that need the pulled SmolLM2 use `smollm2_dir`,
which skips when absent."""
from __future__ import annotations

from pathlib import Path

import pytest

from bodytalk.model.constants import DEFAULT_BASE, DEFAULT_LABELS
from bodytalk.model.llm.weights import BaseModelNotFound, resolve_base

# The shared data lives beside the repository (never inside it): <repo>/../shared/data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_path(*parts: str) -> Path:
    """``SHARED_DATA/parts...``, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared data set {path} (kept outside the repo; absent here)")
    return path


@pytest.fixture
def shared_data():
    """The helper above as a fixture: ``shared_data("bandai-namco-ds1", "data")``."""
    return shared_data_path

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

_CORPUS = [
    "You recognise emotions from body movement. Answer with exactly one word.",
    "walking speed 0.6 m/s; head lowered 25 degrees; arms close to the body",
    "fast jerky arm movements, expanded posture, trunk leaning forward",
    "Skeleton: Measured movement: Which emotion does this body express?",
    " ".join(DEFAULT_LABELS),
]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    # Byte alphabet first, so any text (degree signs included) encodes.
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(_CORPUS * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHATML)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A Hugging Face folder: random 2-layer llama (hidden 32) in float32 + the tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         # A wide init makes the random model's label scores clearly unequal.
                         initializer_range=0.3, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_llm(tiny_model_dir):
    """A fresh SkeletonLLM per test (loading takes milliseconds), so tests may add adapters to it."""
    from bodytalk.model.llm.hf import LLMConfig, SkeletonLLM

    return SkeletonLLM.load(LLMConfig(base=str(tiny_model_dir), dtype="float32"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    try:
        return resolve_base(DEFAULT_BASE)
    except BaseModelNotFound as err:
        pytest.skip(f"real SmolLM2 weights not pulled ({err})")


@pytest.fixture
def tiny_emotion_model(tiny_model_dir, tiny_llm):
    """``tiny_emotion_model(seed)``: an untrained EmotionModel over the tiny llama (float32)."""
    from bodytalk.model.checkpoint import ModelConfig
    from bodytalk.model.inference import EmotionModel

    def make(seed: int = 0):
        cfg = ModelConfig.create(hidden=tiny_llm.hidden_size, llm={"base": str(tiny_model_dir), "dtype": "float32"})
        return EmotionModel.untrained(cfg, llm=tiny_llm, seed=seed)
    return make


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch):
    """Every test starts without CurveZMQ keys, whatever $BODYTALK_KEYS says on this machine."""
    from bodytalk.stream import security
    monkeypatch.delenv(security.KEYS_ENV, raising=False)
    security.configure(None)
    yield
    security.configure(None)
    security.stop_authenticators()
