"""Both LLM backends implement the one LLMBackend protocol that EmotionModel is written against."""
import inspect

import pytest

from bodytalk.model.llm.backend import LLMBackend
from bodytalk.model.llm.hf import SkeletonLLM
from bodytalk.model.llm.vllm import VLLMSkeletonLLM

MEMBERS = [name for name in vars(LLMBackend) if not name.startswith("_")] + ["tokenizer"]


def test_the_transformers_backend_is_an_llm_backend(tiny_llm):
    assert isinstance(tiny_llm, LLMBackend)


@pytest.mark.parametrize("backend", [SkeletonLLM, VLLMSkeletonLLM])
def test_every_protocol_method_has_the_protocol_parameters(backend):
    # The vLLM backend cannot be built without vllm; its class must still offer every member with the
    # parameters the protocol names (a caller passes them by keyword).
    for name in MEMBERS:
        if name == "tokenizer":
            continue
        ours = getattr(backend, name, None)
        assert ours is not None, f"{backend.__name__} lacks {name}"
        want = getattr(LLMBackend, name)
        if isinstance(want, property):
            assert isinstance(ours, property), name
            continue
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(want).parameters), name


def test_generate_stream_refuses_a_batch(tiny_llm):
    embeds = tiny_llm.embed(tiny_llm.tokenizer(["a b", "c d"], return_tensors="pt")["input_ids"])
    with pytest.raises(ValueError, match="one window"):
        tiny_llm.generate_stream(embeds, embeds.new_ones(embeds.shape[:2]))
