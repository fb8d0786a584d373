"""What the app's tests share: a small untrained model folder and a few paintings, made once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import random_painting, write_untrained_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return write_untrained_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def paintings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("paintings")
    for seed in range(3):
        random_painting(seed).save(folder / f"painting_{seed}.png")
    return folder
