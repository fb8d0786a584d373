"""Robust by training (issue 26 §4): train images altered per epoch, original and variant each on its
own, their pairs keeping their targets; the whole run stays deterministic on a CPU given the seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from artsim.learn.augment import TrainingViews
from artsim.params import ParamsError, SiameseParams, parse_params
from artsim.siamese.batches import BatchShare, DecodedImages, GroupedPairBatches, PairBatches, PairTable
from artsim.siamese.train import train_siamese
from tests.finetune.test_train import CPU
from tests.siamese.test_train import params, tiny, trunk_weights  # noqa: F401 (fixtures)
from tests.support.helpers import REPO_ROOT
from tests.support.tiny_project import resolved_pairs


def _train_batches(tiny: dict[str, Path], views: TrainingViews | None) -> PairBatches:  # noqa: F811
    pairs = resolved_pairs(tiny)
    pairs = pairs[pairs["split"] == "train"].reset_index(drop=True)
    table = PairTable.from_pairs(pairs)
    return PairBatches(table, DecodedImages(table.images, 32, views))


def test_both_images_of_a_pair_are_altered_each_on_its_own_and_the_pair_keeps_its_target(
    tiny: dict[str, Path],  # noqa: F811
) -> None:
    altered = _train_batches(tiny, TrainingViews(seed=0, probability=1.0))
    plain = _train_batches(tiny, None)
    pairs = list(range(6))
    as_is = plain[pairs]
    for epoch in (0, 1):
        batch = altered[BatchShare(pairs, epoch=epoch)]
        assert torch.equal(batch.scores, as_is.scores)  # the targets are the table's
        assert torch.equal(batch.scores, torch.from_numpy(altered.table.scores[pairs]))
        assert torch.equal(batch.first, as_is.first) and torch.equal(batch.second, as_is.second)
        originals, variants = batch.first.unique(), batch.second.unique()
        # Every image, originals and variants alike, is altered (probability 1)...
        for index in torch.cat([originals, variants]).tolist():
            assert not torch.equal(batch.inputs[index], as_is.inputs[index]), index
    # ... by its own chain: a pair's two sides are not altered alike, and the epochs differ.
    views = TrainingViews(seed=0, probability=1.0)
    names = [str(path) for path in altered.table.images]
    first, second = altered.table.first[0], altered.table.second[0]
    assert views.chain(names[first], 0) != views.chain(names[second], 0)
    assert not torch.equal(altered[BatchShare(pairs, epoch=0)].inputs, altered[BatchShare(pairs, epoch=1)].inputs)
    # The same epoch again gives the same bits; without an epoch (validation) the images are as they are.
    assert torch.equal(altered[BatchShare(pairs, epoch=0)].inputs, altered[BatchShare(pairs, epoch=0)].inputs)
    assert torch.equal(altered[pairs].inputs, as_is.inputs)


def test_the_sampler_names_the_epoch_only_when_training_alters() -> None:
    groups = np.repeat(np.arange(4), 3)
    sampler = GroupedPairBatches(groups, 6, seed=0, altered=True)
    sampler.set_epoch(2)
    assert {share.epoch for share in sampler} == {2}
    assert {share.epoch for share in GroupedPairBatches(groups, 6, seed=0)} == {None}


def test_training_with_every_part_on_is_deterministic_and_differs_from_plain_training(
    tiny: dict[str, Path], trunk_weights: Path, tmp_path: Path,  # noqa: F811
) -> None:
    pairs = resolved_pairs(tiny)
    robust = params(tmp_path, train_layers="all", epochs=2, augment_prob=0.8, rank_queue=8, spread_weight=0.1)
    first = train_siamese(pairs, trunk_weights, robust, seed=0, runtime=CPU)
    second = train_siamese(pairs, trunk_weights, robust, seed=0, runtime=CPU)
    assert all(np.isfinite(epoch["train_mse"]) for epoch in first.history)
    assert first.history == second.history
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    plain = train_siamese(pairs, trunk_weights, robust.model_copy(update={"augment_prob": 0.0}), seed=0, runtime=CPU)
    assert plain.history != first.history
    assert first.metrics["n_train_pairs"] == plain.metrics["n_train_pairs"] == 18


@pytest.mark.parametrize(("update", "key", "allowed"), [
    ({"augment_prob": 0.5, "train_layers": ["layer4"]}, "augment_prob", "train_layers: all"),
    ({"rank_queue": 64, "rank_weight": 0.0}, "rank_queue", "rank_weight > 0"),
    ({"augment_prob": 1.5}, "siamese.augment_prob", "less than or equal to 1"),
    ({"rank_queue": -1}, "siamese.rank_queue", "greater than or equal to 0"),
    ({"rank_queue": 70000}, "siamese.rank_queue", "less than or equal to 65536"),
    ({"spread_weight": -0.1}, "siamese.spread_weight", "greater than or equal to 0"),
])
def test_bad_robust_training_params_fail_naming_the_key_and_what_is_allowed(update, key: str, allowed: str) -> None:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["siamese"].update(update)
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    assert key in str(caught.value) and allowed in str(caught.value)


def test_the_shipped_defaults_parse_and_name_every_robust_key() -> None:
    defaults = SiameseParams()
    assert {"augment_prob", "rank_queue", "spread_weight"} <= set(type(defaults).model_fields)
    text = (REPO_ROOT / "params.yaml").read_text(encoding="utf-8")
    for key in ("augment_prob", "rank_queue", "spread_weight"):
        assert f"  {key}: " in text, key
