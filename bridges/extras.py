"""Lazy imports of the optional integrations, failing with one line that names the extra."""
from __future__ import annotations

import importlib
from types import ModuleType


class ExtraMissing(RuntimeError):
    """An optional integration's package is not installed; the message says what to install."""


def need(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``ExtraMissing`` naming ``pip install "bodytalk[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:  # also a binary wheel whose bundled library fails to load
        raise ExtraMissing(f"this needs {module.split('.')[0]}: pip install \"bodytalk[{extra}]\" "
                           f"({err})") from None
