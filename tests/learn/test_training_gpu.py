"""Mixed precision and channels_last on a GPU (skipped where there is none)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from artsim.finetune.train import finetune_classifier
from artsim.learn.models import save_weights
from artsim.learn.training import resolve_runtime
from artsim.params import FinetuneParams, SiameseParams
from artsim.siamese.train import train_siamese
from tests.support.tiny_project import build_tiny_project, resolved_pairs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

FINETUNE = FinetuneParams(image_size=64, epochs=4, batch_size=9, lr=1e-3)
SIAMESE = SiameseParams(image_size=64, epochs=3, batch_size=6, lr=1e-3, head_hidden=16)


@pytest.mark.parametrize(("precision", "channels_last"), [("bf16", True), ("fp16", False), ("auto", True)])
def test_mixed_precision_trains_both_models(tmp_path: Path, precision: str, channels_last: bool) -> None:
    tiny = build_tiny_project(tmp_path)
    finetune = FINETUNE.model_copy(update={"precision": precision, "channels_last": channels_last})
    runtime = resolve_runtime(finetune, "finetune")
    assert runtime.precision in ("bf16", "fp16") and runtime.device.type == "cuda"
    result = finetune_classifier(
        pd.read_parquet(tiny["ingested"] / "manifest.parquet"), tiny["ingested"], finetune, 0, runtime
    )
    losses = [epoch["train_loss"] for epoch in result.history]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    # Weights are kept and saved in fp32 whatever the autocast precision.
    assert all(t.dtype == torch.float32 for t in result.model.state_dict().values() if t.is_floating_point())
    weights = tmp_path / "finetune.safetensors"
    save_weights(result.model, weights)

    siamese = SIAMESE.model_copy(update={"precision": precision, "channels_last": channels_last,
                                         "feature_cache": tmp_path / "features"})
    trained = train_siamese(resolved_pairs(tiny), weights, siamese, 0, resolve_runtime(siamese, "siamese"))
    mse = [epoch["train_mse"] for epoch in trained.history]
    assert all(math.isfinite(value) for value in mse)
    assert math.isfinite(trained.metrics["val_mse"])
