"""The model folder both training stages write and everything downstream reads.

A folder holds WEIGHTS_FILE (safetensors) and CARD_FILE (JSON: the architecture and the input
size, what it was trained on). finetune and siamese write one each (models/finetune,
models/siamese); evaluate, the index stage and `artsim.load` read the siamese one through here,
so the file names, the checks of a card and what identifies the weights are said once.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from artsim.core import layout
from artsim.core.errors import UserError
from artsim.core.images import file_hash
from artsim.learn.models import SiameseRegressor, load_siamese

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
# The model a workspace ships (what `artsim.load(workspace)` finds).
MODEL_DIR = layout.MODELS["siamese"]
# What a siamese card must hold to rebuild and feed the model.
SIAMESE_CARD_KEYS = ("head_hidden", "image_size")


class ModelNotFound(UserError):
    pass


def resolve(location: str | os.PathLike) -> Path:
    """models/siamese of a workspace, or a folder holding WEIGHTS_FILE itself."""
    path = Path(location)
    if not path.exists():
        raise ModelNotFound(f"{path}: no such workspace or model folder")
    for candidate in (path, path / MODEL_DIR):
        if (candidate / WEIGHTS_FILE).is_file():
            return candidate
    if (path / "dvc.yaml").is_file():
        raise ModelNotFound(f"no trained model in workspace {path} ({MODEL_DIR / WEIGHTS_FILE} is missing): "
                            "run `dvc repro` there first")
    raise ModelNotFound(f"{path} is neither a model folder ({WEIGHTS_FILE}) nor a workspace (dvc.yaml): "
                        "point --workspace at one, or run `dvc repro` in a workspace first")


def read_card(model_dir: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The folder's card; ModelNotFound if it is missing, damaged, or lacks an integer `required` key."""
    path = model_dir / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(card, dict):
            raise TypeError(f"a JSON {type(card).__name__}, not an object")
        for key in required:
            int(card[key])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFound(f"{path}: missing or damaged model card ({type(exc).__name__}: {exc})") from None
    return card


def load(model_dir: Path) -> tuple[SiameseRegressor, dict[str, Any]]:
    """The siamese model saved in `model_dir` and its card; ModelNotFound names what is unusable."""
    card = read_card(model_dir, SIAMESE_CARD_KEYS)
    try:
        model = load_siamese(model_dir / WEIGHTS_FILE, head_hidden=int(card["head_hidden"]))
    except Exception as exc:  # a damaged or foreign weights file (safetensors/torch raise several types)
        raise ModelNotFound(f"{model_dir / WEIGHTS_FILE}: not this model's weights "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return model, card


def weights_hash(model_dir: Path) -> str:
    """SHA-256 of the weights file: what the verdict thresholds are bound to (artsim.evaluate.verdict)."""
    return file_hash(model_dir / WEIGHTS_FILE)


def fingerprint(model_dir: Path, image_size: int) -> str:
    """What identifies the model's embeddings: its weights' bytes and the input size it embeds at.

    Two models with one fingerprint embed every image alike, so an index keyed by it can be reused;
    any other fingerprint means every vector is computed again (the content hashes and pHashes stay).
    """
    return file_hash(model_dir / WEIGHTS_FILE, prefix=f"image_size={int(image_size)};".encode())
