"""Training loops on tiny synthetic data: classes, loss going down, determinism, bad images."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from artsim.finetune.data import SeededViews, split_dataset, usable_labelled_files
from artsim.finetune.labels import (
    OTHER,
    UNLABELLED,
    UNSEEN,
    NotEnoughClasses,
    class_indices,
    class_names,
    classification_metrics,
    majority_accuracy,
)
from artsim.finetune.train import finetune_classifier
from artsim.ingest.sources import formats as sources
from artsim.learn.resume import EpochCheckpoint
from artsim.learn.training import Runtime, resolve_runtime
from artsim.params import FinetuneParams
from tests.support.helpers import REPO_ROOT
from tests.support.tiny_project import build_tiny_project


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Path]:
    return build_tiny_project(tmp_path)


CPU = Runtime(torch.device("cpu"))
# One batch per epoch: from-scratch ResNet-50 losses on small batches are too noisy to compare.
# No warm-up: in six steps it would spend one on learning little (the cosine decay stays).
FINETUNE = FinetuneParams(image_size=32, epochs=6, batch_size=9, lr=2e-3, warmup=0.0)


# --- classes ----------------------------------------------------------------

def test_rare_classes_are_merged_into_other() -> None:
    train = ["Ukiyo_e"] * 3 + ["Impressionism"] * 2 + ["Abstract_Art"]
    classes = class_names(train, min_class_size=2)
    assert classes == ["Impressionism", "Ukiyo_e", OTHER]
    # Rare in train, or seen only in val/test: both land in OTHER.
    assert class_indices(["Abstract_Art", "Baroque", "Ukiyo_e"], classes) == [2, 2, 1]


def test_other_exists_only_when_some_label_needs_it() -> None:
    assert class_names(["b", "a", "b"], min_class_size=1) == ["a", "b"]
    # A label only val/test know of never adds a class (their labels must not shape the
    # model): with no OTHER to take it, its images are left out of evaluation.
    assert class_indices(["a", "c"], ["a", "b"]) == [0, UNSEEN]


def test_classification_metrics() -> None:
    metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert metrics["accuracy"] == pytest.approx(0.75)
    # F1 of class 0 = 2/3, of class 1 = 0.8.
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert classification_metrics([], []) == {"accuracy": None, "macro_f1": None, "top5_accuracy": None}
    assert metrics["top5_accuracy"] is None
    assert classification_metrics([0, 1, 2], [0, 0, 0], top_k_hits=[True, True, False])[
        "top5_accuracy"
    ] == pytest.approx(2 / 3)


def test_majority_accuracy_is_what_always_guessing_the_commonest_train_class_scores() -> None:
    # Train is mostly class 2; the test set holds it once in four.
    assert majority_accuracy([2, 2, 1, 0, 2], [2, 0, 1, 1]) == pytest.approx(0.25)
    assert majority_accuracy([], [0]) is None and majority_accuracy([0], []) is None


# --- classifier -------------------------------------------------------------

def _finetune(paths: dict[str, Path], params: FinetuneParams = FINETUNE, seed: int = 0, **options):
    manifest = pd.read_parquet(paths["ingested"] / "manifest.parquet")
    return finetune_classifier(manifest, paths["ingested"], params, seed, CPU, **options)


def _losses(result, name: str) -> list[float]:
    return [epoch[name] for epoch in result.history]


def test_finetune_lowers_the_loss_and_is_deterministic(tiny: dict[str, Path]) -> None:
    first, second = _finetune(tiny), _finetune(tiny)
    # Same seed, so the same crops and batches, but (almost) no learning.
    control = _finetune(tiny, FINETUNE.model_copy(update={"lr": 1e-12}))
    trained, untrained = _losses(first, "train_loss"), _losses(control, "train_loss")
    # BatchNorm over 9 images from scratch makes single epochs noisy (and their noise differs by
    # CPU): the best of the last half is compared, against the first epoch and the control's.
    assert min(trained[3:]) < 0.5 * trained[0]
    assert min(trained[3:]) < 0.5 * min(untrained[3:])
    assert first.history == second.history
    assert first.metrics == second.metrics
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert first.classes == ["Cool", "Warm", OTHER]
    assert first.metrics["n_train_images"] == 9
    assert first.metrics["skipped_images"] == 0
    assert 0.0 <= first.metrics["test_accuracy"] <= 1.0


class Stopped(Exception):
    """The run killed mid-training."""


def stopping_in_epoch(epoch: int) -> Callable[[dict[str, float]], None]:
    """An epoch logger that stops the run in epoch `epoch` (0-based), after the checkpoint of the one before."""
    seen: list[dict[str, float]] = []

    def log(figures: dict[str, float]) -> None:
        seen.append(figures)
        if len(seen) > epoch:
            raise Stopped
    return log


# The crops come from torch's global RNG and the batches from (seed, epoch): a resumed run must
# restore the one and take up the other where the stopped run left them.
@pytest.mark.parametrize("select_epoch", ["last", "best_val"])
def test_a_stopped_finetune_resumes_and_ends_as_an_uninterrupted_run(tiny: dict[str, Path], tmp_path: Path,
                                                                      select_epoch: str) -> None:
    chosen = FINETUNE.model_copy(update={"epochs": 3, "select_epoch": select_epoch})
    checkpoint = EpochCheckpoint(tmp_path / "checkpoints", "run")
    whole = _finetune(tiny, chosen)
    with pytest.raises(Stopped):
        _finetune(tiny, chosen, on_epoch=stopping_in_epoch(2), checkpoint=checkpoint)
    assert len(checkpoint.load()["history"]) == 2
    logged: list[dict[str, float]] = []
    resumed = _finetune(tiny, chosen, on_epoch=logged.append, checkpoint=checkpoint)
    assert logged == resumed.history == whole.history  # the first two replayed to the logger
    assert resumed.metrics == whole.metrics
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_crops_are_drawn_per_image_and_epoch_whichever_process_draws_them(tiny: dict[str, Path]) -> None:
    manifest = pd.read_parquet(tiny["ingested"] / "manifest.parquet")
    files, _, _ = usable_labelled_files(manifest, tiny["ingested"], FINETUNE.label)
    views = SeededViews(split_dataset(files, "train", FINETUNE, ["Cool", "Warm", OTHER]), seed=0)
    state = torch.get_rng_state()
    first = views[(1, 0)][0]
    assert torch.equal(torch.get_rng_state(), state)  # the process's own draws are left alone
    torch.manual_seed(123)
    assert torch.equal(views[(1, 0)][0], first)
    assert not torch.equal(views[(1, 1)][0], first)  # another epoch, another crop
    # Loader workers draw the crops the main process would: the same model with or without them.
    chosen = FINETUNE.model_copy(update={"epochs": 2})
    alone, with_workers = _finetune(tiny, chosen), _finetune(tiny, chosen.model_copy(update={"loader_workers": 2}))
    assert alone.history == with_workers.history
    for name, tensor in alone.model.state_dict().items():
        assert torch.equal(tensor, with_workers.model.state_dict()[name]), name


def test_finetune_seed_matters(tiny: dict[str, Path]) -> None:
    params = FINETUNE.model_copy(update={"epochs": 1})
    assert _finetune(tiny, params, seed=0).history != _finetune(tiny, params, seed=1).history


def test_corrupt_training_image_is_skipped_and_reported(
    tiny: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    broken = tiny["ingested"] / "images/o0.jpg"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated JPEG
    with caplog.at_level(logging.WARNING):
        result = _finetune(tiny, FINETUNE.model_copy(update={"epochs": 1}))
    assert result.metrics["skipped_images"] == 1
    assert result.metrics["n_train_images"] == 8
    assert str(broken) in caplog.text


def test_finetune_without_validation_keeps_the_last_epoch(tiny: dict[str, Path]) -> None:
    manifest = pd.read_parquet(tiny["ingested"] / "manifest.parquet")
    manifest = manifest[manifest["split"] != "val"]
    result = finetune_classifier(
        manifest, tiny["ingested"], FINETUNE.model_copy(update={"epochs": 2}), seed=0, runtime=CPU
    )
    assert result.metrics["best_epoch"] == 1
    assert result.metrics["val_accuracy"] is None
    assert all("val_accuracy" not in epoch for epoch in result.history)


def test_finetune_reports_the_test_predictions_for_the_confusion_matrix(tiny: dict[str, Path]) -> None:
    result = _finetune(tiny, FINETUNE.model_copy(update={"epochs": 1}))
    assert len(result.test_predictions) == result.metrics["n_test_images"] == 2
    assert set(result.test_predictions["actual"]) == {"Warm", "Cool"}
    assert set(result.test_predictions["predicted"]) <= set(result.classes)
    accuracy = (result.test_predictions["actual"] == result.test_predictions["predicted"]).mean()
    assert result.metrics["test_accuracy"] == pytest.approx(accuracy)
    # Three classes: top-5 would always be 1, so it is not reported.
    assert result.metrics["test_top5_accuracy"] is None


def test_gpu_precision_is_refused_on_a_cpu_naming_the_key() -> None:
    for precision in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=rf"finetune\.precision: {precision} needs a GPU"):
            resolve_runtime(FINETUNE.model_copy(update={"precision": precision}), "finetune", gpu_available=False)
    assert (
        resolve_runtime(FINETUNE.model_copy(update={"precision": "auto"}), "finetune", gpu_available=False).precision
        == "fp32"
    )


def test_finetune_runs_under_mixed_precision(tiny: dict[str, Path]) -> None:
    # CPU autocast stands in for a GPU's (the stage itself refuses bf16 on a CPU).
    runtime = Runtime(torch.device("cpu"), "bf16", channels_last=True)
    params = FINETUNE.model_copy(update={"epochs": 2, "precision": "bf16", "channels_last": True})
    result = finetune_classifier(
        pd.read_parquet(tiny["ingested"] / "manifest.parquet"), tiny["ingested"], params, 0, runtime
    )
    assert all(np.isfinite(epoch["train_loss"]) for epoch in result.history)
    assert all(t.dtype == torch.float32 for t in result.model.state_dict().values() if t.is_floating_point())


# --- labels too few to learn from ---------------------------------------------

def _relabel(paths: dict[str, Path], label: str, values: list[str]) -> pd.DataFrame:
    """The tiny manifest with `label` set per row (rows in tiny_project.ORIGINALS order)."""
    manifest = pd.read_parquet(paths["ingested"] / "manifest.parquet")
    return manifest.assign(**{label: values})


# tiny_project.ORIGINALS: 4 Warm + 4 Cool + 1 Rare train, then val Warm, Cool, test Warm, Cool
GENRES_WITH_GAPS = ["landscape"] * 4 + ["portrait"] * 4 + ["unknown", "landscape", "", "Unknown", "portrait"]


def test_unknown_and_empty_labels_are_left_out_of_every_split_and_counted(tiny: dict[str, Path]) -> None:
    manifest = _relabel(tiny, "genre", GENRES_WITH_GAPS)
    params = FINETUNE.model_copy(update={"label": "genre", "epochs": 1})
    result = finetune_classifier(manifest, tiny["ingested"], params, 0, CPU)
    assert result.classes == ["landscape", "portrait"]  # no `unknown` class, and no `other` it would have needed
    assert result.metrics["unlabelled_images"] == 3
    assert (result.metrics["n_train_images"], result.metrics["n_val_images"], result.metrics["n_test_images"]) == (
        8,
        1,
        1,
    )
    assert sources.UNKNOWN in UNLABELLED  # what ingest writes for "the source does not say"


@pytest.mark.parametrize(
    "label, values, says",
    [
        # a path-only source: every genre unknown
        (
            "genre",
            ["unknown"] * 13,
            r"finetune\.label: genre leaves 0 class\(es\) .*13 images without a genre .*set finetune\.label to style",
        ),
        # one real class; the others are too rare and would only make up `other`
        (
            "style",
            ["Warm"] * 4 + ["Cool", "Rare", "Odd", "Warm", "Bold"] + ["Cool", "Cool", "Warm", "Cool"],
            r"finetune\.label: style leaves 1 class\(es\) .*\(Warm\).*lower finetune\.min_class_size",
        ),
    ],
)
def test_fewer_than_two_real_classes_fail_before_any_image_is_read(
    tiny: dict[str, Path], label: str, values: list[str], says: str
) -> None:
    manifest = _relabel(tiny, label, values)
    params = FINETUNE.model_copy(update={"label": label})
    with pytest.raises(NotEnoughClasses, match=says) as caught:
        # no such folder: the check must not need a single image
        finetune_classifier(manifest, tiny["ingested"] / "absent", params, 0, CPU)
    assert "\n" not in str(caught.value)


def test_finetune_stage_with_one_class_exits_with_one_line(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stages import finetune as finetune_stage

    root = tiny["ingested"].parents[1]
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["finetune"]["label"] = "genre"  # tiny_project gives every painting the genre "portrait"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as exited:
        finetune_stage.main()
    assert str(exited.value.code).startswith("finetune.label: genre leaves 1 class(es)")
    assert not (root / "metrics").exists() and not (root / "models").exists()
