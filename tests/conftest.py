"""Shared test helpers: the optional shared data sets beside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest

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
