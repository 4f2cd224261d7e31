"""bodytalk: which emotion a body's movement expresses, and why, live over ZeroMQ.

Subpackages: ``bodytalk.capture`` (sources, layouts, windows), ``bodytalk.stream`` (wire format,
transport, recording), ``bodytalk.model`` (tokenizer, LLM, inference), ``bodytalk.train``.
"""
__version__ = "0.1.0"
