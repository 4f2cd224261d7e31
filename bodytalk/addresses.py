"""Host checks shared by the bus (stream/transport.py) and the vLLM HTTP client (model/llm/vllm.py):
both refuse to expose or reach a port from which someone could steer the model, unless asked to."""
from __future__ import annotations

import ipaddress


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only (an interface name, "*" or
    another address is reachable from the network)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False
