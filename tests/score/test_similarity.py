"""Similarities on real paintings (data/sample) and their degradations; pairs; the score stage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from artsim.core.images import read_rgb_array
from artsim.describe.registry import describe_array
from artsim.describe.table import Descriptors, ImageEntry, descriptor_row, descriptor_table
from artsim.generate.backends.style_transfer import choose_style_sources
from artsim.params import CLASSIC_SCORE_WEIGHTS, DescribeParams, ScoreWeights
from artsim.score.pairs import NotEnoughPairs, build_pairs
from artsim.score.report import score_report, score_tables
from artsim.score.similarity import (
    DescriptorSet,
    TextureStats,
    cross_scores,
    cross_similarities,
    descriptor_similarities,
    pair_columns,
    score_dataset,
    score_pairs,
    similarity,
    train_texture_stats,
    weighted_score,
)
from tests.support.full_ranking import cross_score_blocks
from tests.support.similarity_oracle import (
    color_similarity,
    edge_similarity,
    oracle_score,
    oracle_similarities,
    texture_similarity,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PATHS = sorted((REPO / "data" / "sample").glob("*/*.jpg"))
PARAMS = DescribeParams()
WEIGHTS = ScoreWeights(CLASSIC_SCORE_WEIGHTS)  # the three descriptors these tests describe
NAMES = ("color", "texture", "edges")


@pytest.fixture(scope="module")
def sample_images() -> list[np.ndarray]:
    return [read_rgb_array(p, long_side=PARAMS.size) for p in SAMPLE_PATHS]


@pytest.fixture(scope="module")
def sample_descriptors(sample_images) -> list[Descriptors]:
    return [describe_array(img, PARAMS) for img in sample_images]


@pytest.fixture(scope="module")
def stats(sample_descriptors) -> TextureStats:
    return TextureStats.fit(np.stack([d.texture for d in sample_descriptors]))


def all_scores(a: Descriptors, b: Descriptors, stats: TextureStats) -> dict[str, float]:
    sims = descriptor_similarities(a, b, stats)
    return {**sims, "score": weighted_score(sims, WEIGHTS)}


# --- the similarity functions ---------------------------------------------------------------

def test_sample_is_there():
    assert len(SAMPLE_PATHS) >= 20


def test_identical_images_score_exactly_one(sample_descriptors, stats):
    extra = [
        describe_array(np.random.default_rng(s).integers(0, 256, (50, 70, 3), dtype=np.uint8), PARAMS) for s in range(3)
    ]
    flat = describe_array(np.full((40, 40, 3), 200, np.uint8), PARAMS)
    for desc in [*sample_descriptors[:8], *extra, flat]:
        twin = Descriptors(desc.color.copy(), desc.texture.copy(), desc.edges.copy())
        for name, value in all_scores(desc, twin, stats).items():
            assert abs(value - 1.0) <= 1e-9, name


def test_similarities_are_symmetric_bounded_and_below_one_for_different_images(sample_descriptors, stats):
    rng = np.random.default_rng(0)
    noise = [describe_array(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), PARAMS) for _ in range(2)]
    flat = describe_array(np.zeros((64, 64, 3), np.uint8), PARAMS)
    pool = [*sample_descriptors, *noise, flat]
    for _ in range(40):
        i, j = rng.choice(len(pool), size=2, replace=False)
        forward, backward = all_scores(pool[i], pool[j], stats), all_scores(pool[j], pool[i], stats)
        for name in forward:
            assert forward[name] == pytest.approx(backward[name], abs=1e-12), name
            assert 0.0 <= forward[name] <= 1.0, name
        # Two distinct paintings never look identical on colour and texture.
        assert forward["color"] < 1.0 and forward["texture"] < 1.0 and forward["score"] < 1.0


def one_pair(name: str, a: np.ndarray, b: np.ndarray, stats: TextureStats | None = None) -> float:
    """The library's similarity of one pair (the kernels, through descriptor_similarities)."""
    vectors = {"color": np.ones(2), "texture": np.zeros(3), "edges": np.ones(2)}
    first, second = Descriptors(**{**vectors, name: a}), Descriptors(**{**vectors, name: b})
    return descriptor_similarities(first, second, stats or TextureStats(np.zeros(3), np.ones(3)))[name]


@pytest.mark.parametrize("similarity_of", ["oracle", "library"])
def test_similarity_formulas_on_known_vectors(similarity_of):
    color, edges, texture = (
        (color_similarity, edge_similarity, texture_similarity) if similarity_of == "oracle" else
        (lambda a, b: one_pair("color", a, b), lambda a, b: one_pair("edges", a, b),
         lambda a, b, stats: one_pair("texture", a, b, stats)))
    assert color(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])) == pytest.approx(0.5)
    assert color(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 0.0
    assert color(np.zeros(3), np.zeros(3)) == 1.0
    assert edges(np.array([0.2, 0.4]), np.array([0.4, 0.2])) == pytest.approx(0.5)
    assert edges(np.array([0.3, 0.0]), np.array([0.0, 0.3])) == 0.0
    assert edges(np.zeros(4), np.zeros(4)) == 1.0
    stats = TextureStats(mean=np.zeros(3), std=np.array([1.0, 10.0, 100.0]))
    one_std_apart = texture(np.zeros(3), np.array([1.0, 10.0, 100.0]), stats)
    assert one_std_apart == pytest.approx(np.exp(-1.0))
    assert texture(np.zeros(3), np.array([2.0, 0.0, 0.0]), stats) < one_std_apart


def test_weighted_score_respects_weights(sample_descriptors, stats):
    a, b = sample_descriptors[0], sample_descriptors[5]
    sims = descriptor_similarities(a, b, stats)
    assert len(set(round(v, 6) for v in sims.values())) == len(sims) == 8  # otherwise the checks below prove nothing
    only_color = ScoreWeights(color=1.0, texture=0.0, edges=0.0)
    assert similarity(a, b, stats, only_color) == pytest.approx(sims["color"], abs=1e-12)
    assert similarity(a, b, stats, {"color": 0.0, "texture": 2.0, "edges": 0.0}) == pytest.approx(
        sims["texture"], abs=1e-12
    )
    mixed = ScoreWeights(color=1.0, texture=0.0, edges=3.0)
    assert similarity(a, b, stats, mixed) == pytest.approx((sims["color"] + 3 * sims["edges"]) / 4, abs=1e-12)
    assert similarity(a, b, stats, WEIGHTS) == pytest.approx(
        0.4 * sims["color"] + 0.3 * sims["texture"] + 0.3 * sims["edges"]
    )


def test_cross_scores_agree_with_per_pair_scoring(sample_descriptors, stats):
    """Every (row, column) of the vectorised sets x sets scores equals the per-pair oracle."""
    flat = describe_array(np.zeros((64, 64, 3), np.uint8), PARAMS)  # no edges at all
    blank = Descriptors(np.zeros_like(flat.color), flat.texture, flat.edges)  # an empty histogram
    rows = [*sample_descriptors[:12], flat, blank]
    columns = [*sample_descriptors[8:], flat, blank]  # overlaps rows: identical pairs are in there
    a, b = DescriptorSet.stack(rows), DescriptorSet.stack(columns)
    weights = {"color": 1.0, "texture": 0.5, "edges": 2.0}
    sims, scores = cross_similarities(a, b, stats), cross_scores(a, b, stats, weights)
    assert scores.shape == (len(rows), len(columns))
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            expected = oracle_similarities(row, column, stats)
            for name in NAMES:
                assert sims[name][i, j] == pytest.approx(expected[name], abs=1e-12), (name, i, j)
            assert scores[i, j] == pytest.approx(oracle_score(expected, weights), abs=1e-12), (i, j)
    assert scores[8, 0] == pytest.approx(1.0, abs=1e-12)  # sample 8 against itself
    assert np.ptp(scores) > 0.1  # the comparison above is between genuinely different scores


def test_cross_score_blocks_cover_the_matrix_in_bounded_pieces(sample_descriptors, stats):
    a, b = DescriptorSet.stack(sample_descriptors[:10]), DescriptorSet.stack(sample_descriptors[5:])
    blocks = list(cross_score_blocks(a, b, stats, WEIGHTS, max_pairs=3 * len(b)))
    assert [start for start, _ in blocks] == [0, 3, 6, 9]
    assert all(block.size <= 3 * len(b) for _, block in blocks)
    np.testing.assert_array_equal(np.vstack([block for _, block in blocks]), cross_scores(a, b, stats, WEIGHTS))


# --- degradations of real paintings ---------------------------------------------------------

def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def add_noise(rgb: np.ndarray, std: float) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0.0, std, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def shift_hue(rgb: np.ndarray, amount: int) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + amount) % 180  # OpenCV hue is 0-180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


# Levels checked on every sample painting: score and the reacting descriptor fall strictly at
# each step (smallest step seen: ~0.03 for blur/noise, ~0.006 for hue). Hue shifts stop at 18/180
# (36 degrees) because past ~40/180 the 16-bin histogram can wrap and rise again.
DEGRADATIONS = {
    "blur": (blur, [0.7, 1.2, 1.8, 2.5], "edges"),
    "noise": (add_noise, [5, 10, 20, 40], "texture"),
    "hue": (shift_hue, [3, 7, 12, 18], "color"),
}


@pytest.mark.parametrize("kind", list(DEGRADATIONS))
def test_similarity_falls_as_a_painting_is_degraded(kind, sample_images, sample_descriptors, stats):
    degrade, levels, reacting = DEGRADATIONS[kind]
    for path, image, original in zip(SAMPLE_PATHS, sample_images, sample_descriptors):
        scores = [all_scores(original, describe_array(degrade(image, level), PARAMS), stats) for level in levels]
        for name in ("score", reacting):
            values = [s[name] for s in scores]
            assert all(a > b for a, b in zip(values, values[1:])), f"{path.name} {kind} {name}: {values}"
        assert scores[0]["score"] < 1.0


def test_another_painting_scores_below_a_mild_degradation(sample_images, sample_descriptors, stats):
    for i, (image, original) in enumerate(zip(sample_images, sample_descriptors)):
        best_other = max(
            similarity(original, other, stats, WEIGHTS) for j, other in enumerate(sample_descriptors) if j != i
        )
        for degrade, levels, _ in DEGRADATIONS.values():
            mild = similarity(original, describe_array(degrade(image, levels[0]), PARAMS), stats, WEIGHTS)
            assert mild > best_other, SAMPLE_PATHS[i].name


# --- texture statistics -----------------------------------------------------------------------

def fake_descriptors(ids: list[str], seed: int = 0) -> dict[str, Descriptors]:
    rng = np.random.default_rng(seed)
    out = {}
    for image_id in ids:
        color = rng.random(16)
        out[image_id] = Descriptors(color / color.sum(), rng.normal(0, 1, 13) * np.arange(1, 14), rng.random(9))
    return out


def test_texture_stats_use_train_originals_only():
    originals = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "split": ["train", "train", "train", "val", "test"]})
    descs = fake_descriptors(["a", "b", "c", "d", "e", "variant"])
    stats = train_texture_stats(DescriptorSet.of(descs), originals)
    train = np.stack([descs[i].texture for i in "abc"])
    assert np.allclose(stats.mean, train.mean(axis=0)) and np.allclose(stats.std, train.std(axis=0))

    def with_texture(image_id: str, texture: np.ndarray) -> dict[str, Descriptors]:
        changed = dict(descs)
        changed[image_id] = Descriptors(descs[image_id].color, texture, descs[image_id].edges)
        return changed

    for held_out in ("d", "e", "variant"):
        again = train_texture_stats(DescriptorSet.of(with_texture(held_out, np.full(13, 1e6))), originals)
        assert np.array_equal(again.mean, stats.mean) and np.array_equal(again.std, stats.std)
    moved = train_texture_stats(DescriptorSet.of(with_texture("a", np.full(13, 1e6))), originals)
    assert not np.allclose(moved.mean, stats.mean)


def test_constant_texture_feature_gets_unit_std():
    textures = np.array([[1.0, 5.0], [3.0, 5.0]])
    stats = TextureStats.fit(textures)
    assert stats.std.tolist() == [1.0, 1.0]
    assert texture_similarity(textures[0], textures[1], stats) == pytest.approx(np.exp(-np.sqrt(0.5 * 4 / 1.0**2)))


# --- pairs ------------------------------------------------------------------------------------

def fake_manifests(per_split: dict[str, int], variants_per_original: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    originals = [(f"{split}{i:02d}", split) for split, n in per_split.items() for i in range(n)]
    ids = [o for o, _ in originals]
    variants = []
    for k, (original_id, _) in enumerate(originals):
        style_source = ids[(k + 1) % len(ids)]  # each painting restyled after the next one
        for v in range(variants_per_original):
            variants.append({"id": f"{original_id}-v{v}", "original_id": original_id,
                             "strength": [0.25, 0.5, 0.75][v % 3], "style_source_id": style_source})
    return pd.DataFrame(originals, columns=["id", "split"]), pd.DataFrame(variants)


def check_negatives(
    pairs: pd.DataFrame, generated: pd.DataFrame, originals: pd.DataFrame, negatives: int
) -> pd.DataFrame:
    positives, negs = pairs[pairs["positive"]], pairs[~pairs["positive"]]
    assert len(positives) == len(generated)
    assert len(negs) == negatives * len(positives)
    # Each original gets `negatives` negatives per own variant.
    assert (negs.groupby("original_id").size() == positives.groupby("original_id").size() * negatives).all()
    source = generated.set_index("id")
    assert (source.loc[negs["generated_id"], "original_id"].to_numpy() != negs["original_id"].to_numpy()).all()
    assert (
        source.loc[positives["generated_id"], "original_id"].to_numpy() == positives["original_id"].to_numpy()
    ).all()
    split_of = originals.set_index("id")["split"]
    assert (pairs["split"].to_numpy() == split_of.loc[pairs["original_id"]].to_numpy()).all()
    assert pairs["pair_id"].is_unique
    return negs.assign(variant_split=split_of.loc[source.loc[negs["generated_id"], "original_id"]].to_numpy())


def test_negatives_count_differ_and_stay_in_split():
    originals, generated = fake_manifests({"train": 8, "val": 4, "test": 5})
    pairs = build_pairs(originals, generated, negatives=2, seed=1)
    negs = check_negatives(pairs, generated, originals, 2)
    assert (negs["variant_split"] == negs["split"]).all()
    style_of = generated.set_index("id")["style_source_id"]
    assert (style_of.loc[negs["generated_id"]].to_numpy() != negs["original_id"].to_numpy()).all()
    # Enough candidates: no (original, variant) negative is drawn twice.
    assert not negs.duplicated(["original_id", "generated_id"]).any()
    assert set(negs["strength"]) == {0.25, 0.5, 0.75}


def test_negatives_are_deterministic_for_a_seed():
    originals, generated = fake_manifests({"train": 10, "val": 3, "test": 3})
    first = build_pairs(originals, generated, negatives=1, seed=7)
    shuffled = generated.sample(frac=1.0, random_state=3)
    again = build_pairs(originals.iloc[::-1], shuffled, negatives=1, seed=7)
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again.reset_index(drop=True))
    other_seed = build_pairs(originals, generated, negatives=1, seed=8)
    assert set(first["pair_id"]) != set(other_seed["pair_id"])
    assert set(first.loc[first["positive"], "pair_id"]) == set(other_seed.loc[other_seed["positive"], "pair_id"])


def test_negatives_leave_the_split_only_when_it_has_no_other_painting():
    originals, generated = fake_manifests({"train": 5, "val": 1, "test": 3})
    negs = check_negatives(build_pairs(originals, generated, negatives=1, seed=0), generated, originals, 1)
    assert (negs.loc[negs["split"] != "val", "variant_split"] == negs.loc[negs["split"] != "val", "split"]).all()
    assert (negs.loc[negs["split"] == "val", "variant_split"] == "train").all()


def test_a_train_painting_never_takes_a_held_out_negative():
    # One train painting: no other train variant to pair with. It must go without a negative
    # (a val/test variant in a train pair would show the model a held-out painting), while
    # the lone test painting may borrow a train variant (the model has seen those anyway).
    originals, generated = fake_manifests({"train": 1, "val": 3, "test": 1})
    pairs = build_pairs(originals, generated, negatives=1, seed=0)
    split_of = originals.set_index("id")["split"]
    source_split = split_of.loc[generated.set_index("id").loc[pairs["generated_id"], "original_id"]].to_numpy()
    negatives = pairs.assign(variant_split=source_split)[~pairs["positive"]]
    assert not (negatives["split"] == "train").any()
    assert set(negatives.loc[negatives["split"] == "test", "variant_split"]) == {"train"}
    assert set(negatives.loc[negatives["split"] == "val", "variant_split"]) == {"val"}


def test_small_pool_repeats_negatives_evenly_with_unique_pair_ids():
    originals, generated = fake_manifests({"train": 3})
    negs = check_negatives(build_pairs(originals, generated, negatives=4, seed=0), generated, originals, 4)
    # Each original needs 12 negatives but only 3 unrelated variants exist (the other is its style source's).
    counts = negs.groupby(["original_id", "generated_id"]).size()
    assert counts.max() - counts.min() <= 1


def test_no_negatives_requested():
    originals, generated = fake_manifests({"train": 3})
    pairs = build_pairs(originals, generated, negatives=0, seed=0)
    assert pairs["positive"].all() and len(pairs) == len(generated)


# --- scoring and report -------------------------------------------------------------------------

def test_scored_pairs_and_report():
    originals, generated = fake_manifests({"train": 6, "val": 3, "test": 3})
    descs = fake_descriptors([*originals["id"], *generated["id"]])
    # Make every variant a slightly perturbed copy of its original: positives must then win.
    rng = np.random.default_rng(5)
    for variant_id, original_id in zip(generated["id"], generated["original_id"]):
        base = descs[original_id]
        descs[variant_id] = Descriptors(base.color, base.texture + rng.normal(0, 0.05, 13), base.edges * 0.95)
    scored = score_dataset(originals, generated, DescriptorSet.of(descs), WEIGHTS, negatives=1, seed=0).pairs
    assert list(scored.columns) == pair_columns(NAMES)
    assert scored[["color", "texture", "edges", "score"]].apply(lambda c: c.between(0, 1).all()).all()
    report = score_report(scored)
    assert report["pairs"] == {"total": 72, "positives": 36, "negatives": 36}
    by_split = score_tables(scored)["by_split.csv"].set_index("split")
    assert by_split.loc["val", ["total", "positives", "negatives"]].tolist() == [18, 9, 9]
    assert all(report["auc"][name] == 1.0 for name in (*NAMES, "score"))
    assert report["mean_score"]["positive"] > report["mean_score"]["negative"]
    assert score_tables(scored)["by_strength.csv"]["strength"].tolist() == [0.25, 0.5, 0.75]
    json.dumps(report)  # serialisable as metrics


def test_auc_reports_a_descriptor_that_does_not_separate():
    scored = pd.DataFrame({
        "positive": [True, True, False, False], "split": ["train"] * 4, "strength": [0.5] * 4,
        "color": [0.9, 0.8, 0.2, 0.1], "texture": [0.1, 0.9, 0.1, 0.9], "edges": [0.1, 0.2, 0.8, 0.9],
        "score": [0.6, 0.6, 0.4, 0.4],
    })
    auc = score_report(scored)["auc"]
    assert auc == {"color": 1.0, "texture": 0.5, "edges": 0.0, "score": 1.0}
    assert score_report(scored)["test_auc"]["color"] is None


def test_images_describe_skipped_are_left_out():
    originals, generated = fake_manifests({"train": 4, "test": 2})
    descs = fake_descriptors([*originals["id"], *generated["id"]])
    del descs["train00-v1"], descs["train03"]
    scored = score_dataset(originals, generated, DescriptorSet.of(descs), WEIGHTS, negatives=1, seed=0).pairs
    assert "train03" not in set(scored["original_id"])
    assert "train00-v1" not in set(scored["generated_id"])
    train = scored[scored["split"] == "train"]
    assert train["positive"].sum() == (~train["positive"]).sum() == 8


@pytest.mark.parametrize(
    "per_split, undescribed, says",
    [
        (
            {"train": 4, "val": 1},
            "",
            r"^score: no test pair: the test split has no described painting; .*ingest\.test_fraction",
        ),
        (
            {"val": 2, "test": 2},
            "",
            r"^score: no train pair: the train split has no described painting; .*ingest\.source",
        ),
        # train paintings are there but describe skipped every train variant
        (
            {"train": 3, "test": 2},
            "train",
            r"^score: no train pair: none of the 3 described train paintings has a described variant; .*failures\.csv",
        ),
    ],
)
def test_no_train_or_no_test_pair_fails_before_scoring_saying_what_to_change(per_split, undescribed, says):
    originals, generated = fake_manifests(per_split)
    kept = generated[~generated["original_id"].str.startswith(undescribed)] if undescribed else generated
    descs = fake_descriptors([*originals["id"], *kept["id"]])
    with pytest.raises(NotEnoughPairs, match=says) as caught:
        score_dataset(originals, generated, DescriptorSet.of(descs), WEIGHTS, negatives=1, seed=0)
    assert "\n" not in str(caught.value)


def test_negatives_with_split_local_style_sources_stay_in_split_and_unrelated_where_possible():
    originals, generated = fake_manifests({"train": 9, "val": 3, "test": 2})
    sources = choose_style_sources(dict(zip(originals["id"], originals["split"])), seed=0)
    generated["style_source_id"] = generated["original_id"].map(sources)
    negs = check_negatives(build_pairs(originals, generated, negatives=1, seed=0), generated, originals, 1)
    assert (negs["variant_split"] == negs["split"]).all()
    style_of = generated.set_index("id")["style_source_id"]
    styled_after_own = style_of.loc[negs["generated_id"]].to_numpy() == negs["original_id"].to_numpy()
    # Such a negative only where every other painting of the split was restyled after the original
    # (always so in the two-painting test split); never a way out of the split.
    split_of = dict(zip(originals["id"], originals["split"]))
    for original_id in set(negs.loc[styled_after_own, "original_id"]):
        others = [o for o, s in split_of.items() if s == split_of[original_id] and o != original_id]
        assert all(sources[o] == original_id for o in others)
    assert styled_after_own[(negs["split"] == "test").to_numpy()].all()


def lay_out_score_inputs(
    root: Path, originals: pd.DataFrame, generated: pd.DataFrame, descs: dict[str, Descriptors]
) -> None:
    """data/ingested, data/generated and data/descriptors as the score stage reads them, and params.yaml."""
    (root / "data/ingested").mkdir(parents=True)
    (root / "data/generated").mkdir(parents=True)
    (root / "data/descriptors").mkdir(parents=True)
    originals.to_parquet(root / "data/ingested/manifest.parquet")
    generated.to_parquet(root / "data/generated/manifest.parquet")
    roles = {**{i: "original" for i in originals["id"]}, **{i: "generated" for i in generated["id"]}}
    rows = [descriptor_row(ImageEntry(i, roles[i], Path(".")), d) for i, d in descs.items()]
    descriptor_table(rows).to_parquet(root / "data/descriptors/descriptors.parquet")
    # The project's params with the three-descriptor weights: the fake descriptors are colour, texture, edges.
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["score"]["weights"] = dict(CLASSIC_SCORE_WEIGHTS)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_score_stage_without_test_pairs_exits_with_one_line_not_a_traceback(tmp_path):
    originals, generated = fake_manifests({"train": 3, "val": 1})
    lay_out_score_inputs(tmp_path, originals, generated, fake_descriptors([*originals["id"], *generated["id"]]))
    done = subprocess.run([sys.executable, "-m", "stages.score"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip().splitlines()[-1].startswith("score: no test pair: the test split has no described painting")
    )
    assert not (tmp_path / "data/pairs").exists()


def test_score_stage_writes_pairs_and_metrics(tmp_path, monkeypatch):
    from stages import score as score_stage

    originals, generated = fake_manifests({"train": 5, "val": 2, "test": 2})
    descs = fake_descriptors([*originals["id"], *generated["id"]])
    lay_out_score_inputs(tmp_path, originals, generated, descs)
    monkeypatch.chdir(tmp_path)
    score_stage.main()
    pairs = pd.read_parquet(tmp_path / "data/pairs/pairs.parquet")
    metrics = json.loads((tmp_path / "metrics/score.json").read_text())
    assert list(pairs.columns) == pair_columns(NAMES) and len(pairs) == 2 * len(generated)
    assert metrics["pairs"]["total"] == len(pairs)
    assert set(metrics["auc"]) == {*NAMES, "score"}
    described = DescriptorSet.of(descs)
    recomputed = score_pairs(pairs.drop(columns=[*NAMES, "score"]), described,
                             train_texture_stats(described, originals), WEIGHTS)
    np.testing.assert_allclose(recomputed["score"], pairs["score"])
