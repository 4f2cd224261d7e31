"""bodytalk: which emotion a body's movement expresses, and why, live over ZeroMQ.

Subpackages: ``bodytalk.capture`` (sources, layouts, windows), ``bodytalk.stream`` (wire format,
transport, recording), ``bodytalk.model`` (tokenizer, LLM, inference), ``bodytalk.train``.
``bodytalk.subscribe(addr)`` iterates over live emotion events (see ``bodytalk.client``).
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import bodytalk` stays light: the client pulls in pyzmq, never torch.
    if name == "subscribe":
        from bodytalk.client import subscribe
        return subscribe
    raise AttributeError(f"module 'bodytalk' has no attribute {name!r}")
