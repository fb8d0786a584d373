from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_DIR


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of data/sample, for tests that add or break files."""
    target = tmp_path / "source"
    shutil.copytree(SAMPLE_DIR, target)
    return target
