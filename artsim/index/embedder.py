"""The model side of an index (artsim.index.build.Embedder) from a siamese model folder or a loaded model.

The index stage loads models/siamese itself (stages import no app); the app wraps the trunk its
Scorer already holds. Both embed exactly as the API does: pair_transform at the card's image size.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artsim.learn import model_folder
from artsim.learn.models import SiameseRegressor, pair_transform


class TrunkEmbedder:
    """Vectors of the model's width (its embedding_dim), as SiameseRegressor.embed gives them."""

    def __init__(self, model: SiameseRegressor, image_size: int, fingerprint: str,
                 device: torch.device | None = None) -> None:
        self.model, self.fingerprint = model, fingerprint
        self.dim = model.embedding_dim
        self.device = device or torch.device("cpu")
        self.transform = pair_transform(image_size)

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.model.eval()
        batch = torch.stack([self.transform(image) for image in images]).to(self.device)
        return self.model.embed(batch).float().cpu().numpy()


def model_folder_embedder(model_dir: Path) -> TrunkEmbedder:
    """The siamese model saved in `model_dir` (artsim.learn.model_folder)."""
    model, card = model_folder.load(model_dir)
    image_size = int(card["image_size"])
    return TrunkEmbedder(model, image_size, model_folder.fingerprint(model_dir, image_size))
