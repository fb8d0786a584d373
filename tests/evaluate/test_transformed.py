"""The held-out transformed evaluation: every test variant under each alteration, scored by every
scorer, deterministic, made by evaluate alone and never seen by training."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from artsim.core.alterations import EVALUATION, Alteration
from artsim.core.metrics import pair_aucs
from artsim.evaluate import evaluate_on_test
from artsim.evaluate.peers import peer_similarities_of_pairs, signatures_of
from artsim.evaluate.transformed import OVERALL, TRANSFORMED_COLUMNS
from artsim.learn.models import save_weights
from tests.evaluate.test_run import collection, describe_tiny_project, descriptor_scorer, mostly_test, random_model
from tests.support.tiny_project import build_tiny_project, resolved_pairs

REPO = Path(__file__).resolve().parents[2]
SCORERS = ["model", "descriptor", "phash", "dhash", "ssim", "fused"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_project(tmp_path_factory.mktemp("tiny"))


def with_val(pairs: pd.DataFrame) -> pd.DataFrame:
    """mostly_test, but the val originals' pairs (o9, o10) kept in val: fused's calibration is fitted on them."""
    return mostly_test(pairs).assign(split=lambda d: np.where(d["original_id"].isin(["o9", "o10"]), "val", d["split"]))


def run(project: dict[str, Path], **kwargs):
    return evaluate_on_test(
        random_model(),
        with_val(resolved_pairs(project)),
        collection(project, mostly_test=True),
        32,
        4,
        descriptor_scorer=descriptor_scorer(project),
        **kwargs,
    )


@pytest.fixture(scope="module")
def plain(project):
    """One run under every evaluation alteration (seconds each): the tests that read it only read it."""
    return run(project)


def test_every_scorer_is_judged_on_every_test_variant_under_every_alteration(plain) -> None:
    evaluation = plain
    table = evaluation.tables["transformed.csv"]
    assert list(table.columns) == TRANSFORMED_COLUMNS
    assert list(table["transform"].unique()) == [*EVALUATION, OVERALL]
    assert {t: list(rows["scorer"]) for t, rows in table.groupby("transform")} == {
        t: SCORERS for t in [*EVALUATION, OVERALL]
    }
    assert evaluation.calibration is not None  # fused is its calibrated probability, as in search
    queries = evaluation.report["n_queries"]
    per_transform = table[table["transform"] != OVERALL]
    assert queries > 0 and (per_transform["n_queries"] == queries).all()
    assert (table.loc[table["transform"] == OVERALL, "n_queries"] == queries * len(EVALUATION)).all()
    assert table[["pair_auc", "recall_at_1", "mrr"]].notna().all().all()
    headline = evaluation.report["transformed"]
    assert set(headline) == set(SCORERS) and all(
        set(figures) == {"pair_auc", "recall_at_1", "mrr"} for figures in headline.values()
    )


def test_the_transformed_set_is_deterministic(project, plain) -> None:
    first, second = plain.tables["transformed.csv"], run(project).tables["transformed.csv"]
    pd.testing.assert_frame_equal(first, second)


@pytest.fixture(scope="module")
def identity_and_mirror(project):
    """One run judging an identity alteration beside the mirror (each transform's rows its own)."""
    return run(project, alterations={"identity": Alteration("identity", lambda image: image),
                                     "mirror": EVALUATION["mirror"]})


def test_an_identity_alteration_reproduces_the_plain_figures_of_every_scorer(identity_and_mirror) -> None:
    """The altered queries are read as the plain ones are: unaltered, every scorer finds what it found."""
    evaluation = identity_and_mirror
    table = evaluation.tables["transformed.csv"].query("transform == 'identity'").set_index("scorer")
    for scorer in SCORERS:
        plain = evaluation.report[scorer]
        assert table.at[scorer, "recall_at_1"] == pytest.approx(plain["recall_at_1"]), scorer
        assert table.at[scorer, "mrr"] == pytest.approx(plain["mrr"]), scorer
    # Pairs: the test pairs of the queried variants (a variant whose source is not a test original asks nothing).
    predictions = evaluation.predictions
    queried = predictions[
        predictions["generated_path"].isin(set(predictions.loc[predictions["positive"], "generated_path"]))
    ]
    assert len(queried) < len(predictions)  # the fixture has such variants: the subset matters
    signatures = signatures_of([*queried["original_path"], *queried["generated_path"]])
    expected = {
        "model": queried["prediction"].to_numpy(),
        **peer_similarities_of_pairs(signatures, list(queried["original_path"]), list(queried["generated_path"])),
    }
    expected["fused"] = evaluation.calibration.probability(expected)  # the val-fitted calibration, as search has it
    for scorer, auc in pair_aucs(queried["positive"].to_numpy(), expected).items():
        assert table.at[scorer, "pair_auc"] == pytest.approx(auc), scorer
    assert table.at["model", "n_pairs"] == table.at["fused", "n_pairs"] == len(queried)
    # On the plain set too, fused's pair score is that calibrated probability.
    left, right = list(predictions["original_path"]), list(predictions["generated_path"])
    plain_fused = evaluation.calibration.probability({"model": predictions["prediction"].to_numpy(),
                                                      **peer_similarities_of_pairs(signatures_of(left + right),
                                                                                   left, right)})
    assert evaluation.report["fused"]["pair_auc"] == pytest.approx(
        pair_aucs(predictions["positive"].to_numpy(), {"fused": plain_fused})["fused"])


def test_mirroring_changes_what_the_hashes_see(identity_and_mirror) -> None:
    table = identity_and_mirror.tables["transformed.csv"].set_index(["transform", "scorer"])
    assert table.at[("mirror", "phash"), "pair_auc"] != table.at[("identity", "phash"), "pair_auc"]


def test_the_evaluate_stage_writes_no_altered_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Altered copies live in memory only: after evaluate, data/ holds exactly the files it held."""
    paths = build_tiny_project(tmp_path)
    describe_tiny_project(paths)
    save_weights(random_model(), tmp_path / "models/siamese/model.safetensors")
    (tmp_path / "models/siamese/card.json").write_text(json.dumps({"head_hidden": 8, "image_size": 32}))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"ingest": {"source": "data/sample"}, "evaluate": {"batch_size": 8}})
    )
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in Path("data").rglob("*") if p.is_file())
    from stages import evaluate

    evaluate.main()
    assert sorted(p for p in Path("data").rglob("*") if p.is_file()) == before
    table = pd.read_csv("metrics/evaluate/transformed.csv")
    assert set(table["transform"]) == {*EVALUATION, OVERALL}
    assert json.loads(Path("models/verdict.json").read_text())["positives"] > 0


def _names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.attr if isinstance(node, ast.Attribute) else node.id
            for node in ast.walk(tree) if isinstance(node, (ast.Name, ast.Attribute))} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_only_evaluate_uses_the_held_out_alteration_settings() -> None:
    """Training may augment with the same family (core.alterations' functions), never with the
    evaluation's settings: no module outside artsim/evaluate names EVALUATION, but the report, which shows
    them on an example and trains nothing."""
    users = {
        path.relative_to(REPO).as_posix()
        for folder in ("artsim", "stages")
        for path in (REPO / folder).rglob("*.py")
        if "EVALUATION" in _names_used(path)
    } - {"artsim/core/alterations.py"}  # where it is defined
    readers = ("artsim/evaluate/", "artsim/report/")
    assert users and all(user.startswith(readers) for user in users), users


def test_ssim_on_the_transformed_set_keeps_the_plain_budget(project, plain) -> None:
    budget = plain.report["n_queries"] * plain.report["n_candidates"]  # plain retrieval fits, six times more does not
    evaluation = run(project, ssim_retrieval_max_pairs=budget)
    assert evaluation.report["ssim"]["recall_at_1"] is not None
    assert evaluation.report["transformed"]["ssim"] == {"pair_auc": None, "recall_at_1": None, "mrr": None}
    assert evaluation.report["transformed"]["phash"]["recall_at_1"] is not None
