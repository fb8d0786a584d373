"""Every test in this folder is end-to-end: marked here, so that `-m "not e2e"` skips them all and
none can be left out by forgetting its own mark."""
from __future__ import annotations

from pathlib import Path

import pytest

E2E_FOLDER = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest's collection hook sees the whole session's items, not only this folder's.
    for item in items:
        if item.path.is_relative_to(E2E_FOLDER):
            item.add_marker(pytest.mark.e2e)
