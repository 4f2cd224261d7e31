"""Fixtures shared by the serving tests."""
import pytest

from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.inference import EmotionModel


@pytest.fixture(scope="module")
def model():
    """An untrained encoder-only model (labels from its head); modules that need the LLM path
    override ``model`` with one over the tiny llama."""
    return EmotionModel.untrained(ModelConfig.create(with_llm=False), seed=5)
