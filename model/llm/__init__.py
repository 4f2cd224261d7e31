"""The language model behind the LLMBackend protocol: Hugging Face transformers or vLLM, prompts, label scoring."""
