"""What the user sees follows the model's shipped thresholds and the weights in force: `artsim compare`
(text, --json, --plot), `artsim search` and evaluate's gallery, with the default weights, weights as
`fit` learns them (every candidate, some zero) and a single other descriptor ({layout: 1})."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import artsim
from artsim.app.cli import main
from artsim.core.images import file_hash, load_rgb
from artsim.describe.texture import HARALICK_FEATURES
from artsim.evaluate.gallery import PICK_COLUMNS, gallery_picks, render_gallery, weights_text
from artsim.evaluate.verdict import ShippedThresholds, Thresholds
from artsim.index import RANKING_NAMES
from artsim.index.query import Calibration, ranking_named
from artsim.params import DESCRIPTOR_NAMES, DescribeParams, ScoreWeights
from artsim.score.fit import fit_weights
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import TextureStats
from tests.support.helpers import random_painting, write_untrained_model
from tests.support.marks import COPIES, check_hit_verdict, marked_model, unrelated_images

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def fitted_weights() -> dict[str, float]:
    """What `score.weights: fit` saves: a weight for every candidate, found on labelled pairs."""
    rng = np.random.default_rng(0)
    positive = np.arange(40) % 2 == 0
    similarities = pd.DataFrame({name: rng.uniform(0, 1, 40) + (0.5 * positive if name in ("layout", "lbp") else 0.0)
                                 for name in DESCRIPTOR_NAMES})
    return fit_weights(similarities, positive)


WEIGHTINGS = {"default": None, "fit": fitted_weights(), "layout": {"layout": 1.0}}


def build_model_folder(root: Path, weights: dict[str, float] | None) -> Path:
    """models/siamese as the siamese stage ships it (untrained), under root/models."""
    folder = write_untrained_model(root / "models" / "siamese")
    stats = TextureStats(mean=np.zeros(HARALICK_FEATURES), std=np.full(HARALICK_FEATURES, 2.0))
    weighting = ScoreWeights() if weights is None else ScoreWeights(weights)
    DescriptorScorer(DescribeParams(size=64), weighting, stats).save(folder / "descriptor_score.json")
    return folder


@pytest.fixture(scope="module")
def built_models(tmp_path_factory) -> dict[str, Path]:
    """One model folder per weighting, built once for the module; its files read-only, so no test can alter it."""
    built = {name: build_model_folder(tmp_path_factory.mktemp(f"model-{name}"), weights)
             for name, weights in WEIGHTINGS.items()}
    for path in (path for folder in built.values() for path in folder.iterdir()):
        path.chmod(0o444)
    return built


@pytest.fixture
def model_folder(tmp_path, built_models) -> Callable[[str], Path]:
    """A test's own models/siamese (under tmp_path/models, where it ships its thresholds): hard links to the
    module's built folder of that weighting."""
    def own_copy(weighting: str = "default") -> Path:
        return Path(shutil.copytree(built_models[weighting], tmp_path / "models" / "siamese", copy_function=os.link))
    return own_copy


def ship(folder: Path, likely: float, very_likely: float | None, positives: int = 36, negatives: int = 36) -> None:
    thresholds = Thresholds({0.90: likely, 0.99: very_likely}, {0.90: 0.8, 0.99: 0.5}, positives, negatives)
    ShippedThresholds(file_hash(folder / "model.safetensors"), thresholds).save(folder.parent / "verdict.json")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for seed in range(3):
        random_painting(seed).save(folder / f"painting_{seed}.png")
        paths.append(folder / f"painting_{seed}.png")
    return paths


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_compare_shows_the_parts_in_force_and_the_verdict(capsys, tmp_path, model_folder, images, weighting) -> None:
    folder = model_folder(weighting)
    score = artsim.load(folder).score(images[0], images[1]).model_score
    ship(folder, likely=score - 0.01, very_likely=min(1.0, score + 0.2))
    plot = tmp_path / "plot.png"
    status, out, err = run_cli(
        capsys, "compare", str(images[0]), str(images[1]), "--model", str(folder), "--plot", str(plot)
    )
    assert status == 0, err
    weights = WEIGHTINGS[weighting] or ScoreWeights().as_dict()
    lines = out.splitlines()
    parts = lines[[line.startswith("descriptor score") for line in lines].index(True) + 1:]
    parts = [line.split()[0] for line in parts[:[line.startswith("verdict") for line in parts].index(True)]]
    assert sorted(parts) == sorted(weights)  # every part in force, one a line, no other
    verdict = " ".join(out[out.index("\nverdict "):].split())
    assert verdict.startswith(f"verdict derived: likely (score = {score:.3f} >= {score - 0.01:.3f}; "
                              "90% precision, on 36 derived / 36 unrelated held-out pairs")
    with Image.open(plot) as image:
        assert image.size[0] > 200
    status, out, _ = run_cli(capsys, "compare", str(images[0]), str(images[1]), "--model", str(folder), "--json")
    payload = json.loads(out)
    assert set(payload["similarities"]) == set(weights)
    assert (payload["verdict"], payload["threshold"], payload["precision"], payload["pairs"]) == (
        "likely",
        pytest.approx(score - 0.01),
        0.9,
        72,
    )
    assert (payload["positives"], payload["negatives"]) == (36, 36) and "few pairs" in payload["verdict_text"]


def test_compare_below_the_threshold_says_no_evidence_and_above_the_99_very_likely(capsys, model_folder,
                                                                                  images) -> None:
    folder = model_folder()
    score = artsim.load(folder).score(images[0], images[2]).model_score
    ship(folder, likely=score + 0.01, very_likely=None, positives=150, negatives=300)
    _, out, _ = run_cli(capsys, "compare", str(images[0]), str(images[2]), "--model", str(folder), "--json")
    payload = json.loads(out)
    assert payload["verdict"] == "no_evidence" and payload["verdict_text"].startswith(
        f"no evidence of derivation (score = {score:.3f} <"
    )
    assert payload["pairs"] == 450 and "few pairs" not in payload["verdict_text"]
    ship(folder, likely=score - 0.2, very_likely=score - 0.1)
    _, out, _ = run_cli(capsys, "compare", str(images[0]), str(images[2]), "--model", str(folder), "--json")
    assert json.loads(out)["verdict"] == "very_likely" and json.loads(out)["precision"] == 0.99


@pytest.mark.parametrize("problem", ["absent", "other weights", "damaged"])
def test_without_shipped_thresholds_compare_and_search_say_so_and_do_not_fail(
    capsys, model_folder, images, problem
) -> None:
    folder = model_folder()
    if problem == "other weights":
        ShippedThresholds("0" * 64, Thresholds({0.9: 0.1, 0.99: 0.2}, {0.9: 1.0, 0.99: 1.0}, 5, 5)).save(
            folder.parent / "verdict.json"
        )
    elif problem == "damaged":
        (folder.parent / "verdict.json").write_text('{"levels": [')
    status, out, err = run_cli(capsys, "compare", str(images[0]), str(images[1]), "--model", str(folder), "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert payload["verdict"] == "none" and payload["threshold"] is None
    assert payload["verdict_text"].startswith("no verdict: no thresholds shipped with this model")
    status, out, err = run_cli(
        capsys, "search", str(images[0]), "--originals", str(images[0].parent), "--model", str(folder)
    )
    assert status == 0, err
    assert "no thresholds shipped" in out and " * " not in out


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_search_marks_the_hits_at_or_above_the_90_threshold(capsys, model_folder, images, weighting) -> None:
    folder = model_folder(weighting)
    by_model = ("--by", "model")  # the model's threshold judges the model's ranking (not the workspace's default)
    search = ("search", str(images[0]), "--originals", str(images[0].parent), "--model", str(folder), *by_model)
    status, out, _ = run_cli(capsys, *search, "--json")
    scores = sorted(hit["score"] for hit in json.loads(out)["results"])
    cut = (scores[0] + scores[-1]) / 2
    assert scores[0] < cut < scores[-1]
    ship(folder, likely=cut, very_likely=None)
    status, out, err = run_cli(capsys, *search, "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert [hit["likely_derived"] for hit in payload["results"]] == [hit["score"] >= cut for hit in payload["results"]]
    assert payload["threshold_note"].startswith(f"* derived likely (by model): model score >= {cut:.3f} "
                                                "(the threshold at 90% precision, on 36 derived / 36 unrelated")
    _, text, _ = run_cli(capsys, *search)
    marked = [line for line in text.splitlines()[1:] if line[:4].strip().isdigit()]
    assert [" * " in line for line in marked] == [hit["likely_derived"] for hit in payload["results"]]


def search_outputs(capsys, queries: list[Path], *args: str) -> dict[str, str]:
    """What every output form of `artsim search` prints for the same call: {form: its output}."""
    outputs = {}
    for form in ("json", "jsonl", "csv", "text"):
        flags = [] if form == "text" else [f"--{form}"]
        status, out, err = run_cli(capsys, "search", *map(str, queries), *args, *flags)
        assert status == 0, err
        outputs[form] = out
    return outputs


def hits_by_query(form: str, out: str) -> dict[str, list[tuple[bool, str | None]]]:
    """Each query's hits as an output form gives them: {query name: [(mark, verdict sentence)]}; the text table
    gives no sentence (None)."""
    if form in ("json", "jsonl"):
        results = json.loads(out) if form == "json" else list(map(json.loads, out.splitlines()))
        return {Path(r["query"]).name: [(h["likely_derived"], h["verdict_text"]) for h in r["results"]]
                for r in results}
    if form == "csv":
        rows = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
        return {Path(q).name: list(zip(group["likely_derived"] == "True", group["verdict_text"]))
                for q, group in rows.groupby("query", sort=False)}
    blocks = [block.splitlines() for block in ("\n" + out).split("\nquery ")[1:]]
    return {Path(block[0]).name: [(" * " in line, None) for line in block[2:] if line[:4].strip().isdigit()]
            for block in blocks}


@pytest.fixture(scope="module")
def marked(tmp_path_factory, images) -> Path:
    return marked_model(tmp_path_factory.mktemp("marked"), images)


@pytest.mark.parametrize("ranking", RANKING_NAMES)
def test_only_a_copy_is_marked_by_any_ranking_and_each_hit_says_why_alike_in_every_form(capsys, tmp_path, images,
                                                                                        marked, ranking) -> None:
    """A copy of one original among images unrelated to every original: only the copy's source is marked, in every
    output form; each hit carries its verdict sentence by its ranking's own scorer, alike in json, jsonl and csv,
    and the text table keeps to the mark and its legend."""
    for name, image in unrelated_images().items():
        image.save(tmp_path / f"{name}.png")
    COPIES[0](load_rgb(images[1])).save(tmp_path / "copy.png")  # derived: its source is marked, so marks are live
    outputs = search_outputs(capsys, sorted(tmp_path.glob("*.png")), "--originals", str(images[0].parent),
                             "--model", str(marked), "--by", ranking, "--top-k", "3")
    answers = {form: hits_by_query(form, out) for form, out in outputs.items()}
    for form, hits in answers.items():
        marks = {name: [bool(mark) for mark, _ in found] for name, found in hits.items()}
        assert set(marks) == {"copy.png", "flat.png", "noise.png", "shapes.png"}, form
        assert marks["copy.png"] == [True, False, False], (form, marks)
        assert not any(mark for name in ("flat.png", "noise.png", "shapes.png") for mark in marks[name]), (form, marks)
    [scorer] = ranking_named(ranking).judged_by
    thresholds = artsim.load(marked).thresholds_of(scorer)
    for result in json.loads(outputs["json"]):
        for hit in result["results"]:
            check_hit_verdict(hit, scorer, thresholds)
    sentences = {name: [text for _, text in found] for name, found in answers["json"].items()}
    for form in ("jsonl", "csv"):
        assert {name: [text for _, text in found] for name, found in answers[form].items()} == sentences, form
    assert not any(text in outputs["text"] for texts in sentences.values() for text in texts)


def test_compare_pairs_gives_each_pair_the_verdict_compare_gives(capsys, tmp_path, images, marked) -> None:
    copy, shapes = tmp_path / "copy.png", tmp_path / "shapes.png"
    COPIES[0](load_rgb(images[0])).save(copy)
    unrelated_images()["shapes"].save(shapes)
    pairs = [(copy, images[0]), (shapes, images[0]), (tmp_path / "gone.png", images[0])]
    (tmp_path / "pairs.csv").write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in pairs))
    status, out, err = run_cli(capsys, "compare", "--pairs", str(tmp_path / "pairs.csv"), "--model", str(marked))
    assert status == 2 and "gone.png" in err, err  # one row failed: its own result, and the call says so
    rows = list(pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False).to_dict("records"))
    for (a, b), row in zip(pairs[:2], rows):
        _, single, _ = run_cli(capsys, "compare", str(a), str(b), "--model", str(marked), "--json")
        assert row["verdict"] == json.loads(single)["verdict"]
    assert [row["verdict"] for row in rows] == ["very_likely", "no_evidence", ""] and rows[2]["error"]


def test_each_ranking_is_marked_by_its_own_scorers_thresholds(capsys, tmp_path, model_folder, images) -> None:
    """Thresholds where the model's would mark pHash's similarities and pHash's would not mark the model's
    scores: each ranking's hits follow their own scorer's, fused its calibrated probability's (here a steep one of
    pHash's similarity: above one half for an identical image only)."""
    folder = model_folder()
    loose, strict = Thresholds({0.9: 0.3, 0.99: None}, {0.9: 1.0, 0.99: None}, 36, 36), \
        Thresholds({0.9: 0.9999, 0.99: None}, {0.9: 1.0, 0.99: None}, 36, 36)
    half = Thresholds({0.9: 0.5, 0.99: None}, {0.9: 1.0, 0.99: None}, 21, 588, {0.9: (0.81, 0.98)})
    steep = Calibration(("model", "phash"), (0.0, 1000.0), -999.9)
    ShippedThresholds.of(file_hash(folder / "model.safetensors"), {"model": loose, "phash": strict, "fused": half},
                         calibration=steep).save(folder.parent / "verdict.json")
    query = tmp_path / "shapes.png"
    unrelated_images()["shapes"].save(query)
    found = {}
    for ranking in RANKING_NAMES:
        _, out, _ = run_cli(capsys, "search", str(query), "--originals", str(images[0].parent), "--model", str(folder),
                            "--by", ranking, "--json")
        found[ranking] = json.loads(out)
    phash_scores = [hit["score"] for hit in found["phash"]["results"]]
    model_scores = [hit["score"] for hit in found["model"]["results"]]
    assert min(phash_scores) >= 0.3 and max(phash_scores) < 0.9999  # the model's threshold would mark every one
    assert [hit["likely_derived"] for hit in found["phash"]["results"]] == [False] * len(phash_scores)
    assert max(model_scores) < 0.9999 and min(model_scores) >= 0.3  # pHash's threshold would mark none
    assert [hit["likely_derived"] for hit in found["model"]["results"]] == [True] * len(model_scores)
    fused = found["fused"]["results"]
    assert not any(hit["likely_derived"] for hit in fused) and max(hit["score"] for hit in fused) < 0.5
    notes = {ranking: found[ranking]["threshold_note"] for ranking in RANKING_NAMES}
    assert "pHash similarity >= 1.000" in notes["phash"] and "(by phash)" in notes["phash"]
    assert notes["fused"] == ("* derived likely (by fused): calibrated p(derived) >= 0.500 (the threshold at 90% "
                              "precision, 95% CI 0.81–0.98, on 21 derived / 588 unrelated held-out pairs; few pairs, "
                              "a rough threshold)")
    _, out, _ = run_cli(capsys, "search", str(images[2]), "--originals", str(images[0].parent), "--model", str(folder),
                        "--by", "fused", "--json")
    top = json.loads(out)["results"][0]
    assert top["path"] == str(images[2]) and top["likely_derived"] is True  # the original itself: p above one half
    assert top["score"] == pytest.approx(1 / (1 + np.exp(-0.1)))  # ranked by its calibrated probability


def test_a_hit_judged_by_several_scorers_names_whose_threshold_decides(model_folder) -> None:
    """A ranking may be judged by several scorers (Ranking.judged_by): a hit is marked where each reaches its own
    threshold, and its sentence gives the verdicts that decide, each naming its scorer's value."""
    folder = model_folder()
    loose = Thresholds({0.9: 0.3, 0.99: None}, {0.9: 1.0, 0.99: None}, 36, 36, {0.9: (0.7, 0.95)})
    strict = Thresholds({0.9: 0.9, 0.99: None}, {0.9: 1.0, 0.99: None}, 21, 588, {0.9: (0.81, 0.98)})
    ShippedThresholds.of(file_hash(folder / "model.safetensors"), {"model": loose, "phash": strict}).save(
        folder.parent / "verdict.json")
    scorer = artsim.load(folder)
    both = scorer.judge({"model": 0.5, "phash": 0.95})
    assert both.likely_derived is True and both.text == (
        "derived: likely (model score = 0.500 >= 0.300; 90% precision, 95% CI 0.70–0.95, on 36 derived / 36 "
        "unrelated held-out pairs; few pairs, a rough threshold) and derived: likely (pHash similarity = 0.950 >= "
        "0.900; 90% precision, 95% CI 0.81–0.98, on 21 derived / 588 unrelated held-out pairs; few pairs, a rough "
        "threshold)")
    short = scorer.judge({"model": 0.5, "phash": 0.6})  # the model's threshold reached, pHash's not: pHash's decides
    assert short.likely_derived is False and short.text == (
        "no evidence of derivation (pHash similarity = 0.600 < 0.900; 90% precision, 95% CI 0.81–0.98, on 21 "
        "derived / 588 unrelated held-out pairs; few pairs, a rough threshold)")
    unknown = scorer.judge({"model": 0.5, "fused": 0.7})  # this file ships no thresholds for fused
    assert unknown.likely_derived is None and unknown.text == (
        "no verdict by calibrated p(derived): no thresholds shipped for fused (verdict.json predates them: run the "
        "evaluate stage)")


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_the_gallery_says_what_the_descriptor_score_is_made_of(tmp_path, weighting) -> None:
    weights = WEIGHTINGS[weighting] or ScoreWeights().as_dict()
    rows = []
    for i in range(4):
        original, generated = tmp_path / f"o{i}.png", tmp_path / f"g{i}.png"
        random_painting(i).save(original)
        random_painting(i + 10).save(generated)
        rows.append({"pair_id": f"p{i}", "original_path": original, "generated_path": generated, "target": 0.5,
                     "prediction": 0.5 + 0.1 * i, "positive": True, "strength": 0.5})
    picks = gallery_picks(pd.DataFrame(rows, columns=PICK_COLUMNS))
    legend = weights_text(weights)
    assert all(f"{name} (weight {w:g})" in legend for name, w in weights.items()) and legend.count("weight ") == len(
        weights
    )
    with_weights, without = render_gallery(picks, weights=weights), render_gallery(picks)
    assert with_weights.height > without.height  # the legend's lines above the rows


# --- one behaviour per fault: an unusable input costs only its own result, status 2 when any failed -----------

def unusable_queries(folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    (folder / "notes.jpg").write_text("not an image")
    return {"missing_file": folder / "nope.jpg", "not_an_image": folder / "notes.jpg"}


def search_answers(form: str, out: str) -> dict[str, tuple[int, str | None]]:
    """query -> (hits, error) as each output form says it."""
    if form == "json":
        loaded = json.loads(out)  # one query: its object; several: a list
        results = [loaded] if isinstance(loaded, dict) else loaded
        return {r["query"]: (len(r["results"]), r.get("error")) for r in results}
    if form == "jsonl":
        return {r["query"]: (len(r["results"]), r.get("error")) for r in map(json.loads, out.splitlines())}
    if form == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        return {q: (sum(1 for r in rows if r["query"] == q and r["rank"]),
                    next((r["error"] for r in rows if r["query"] == q and r["error"]), None))
                for q in {r["query"] for r in rows}}
    blocks = ["query " + block for block in out.split("\nquery ") if block.strip()]
    blocks[0] = blocks[0].removeprefix("query ")
    answers = {}
    for block in blocks:
        lines = block.splitlines()
        error = " ".join(lines[1:]).removeprefix("error ") if lines[1].startswith("error") else None
        answers[lines[0].removeprefix("query ")] = (sum(1 for line in lines if line[:4].strip().isdigit()), error)
    return answers


@pytest.mark.parametrize("form", ["text", "json", "jsonl", "csv"])
def test_search_answers_every_usable_query_and_reports_each_unusable_one(capsys, tmp_path, model_folder, images, form,
                                                                        monkeypatch) -> None:
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    folder = model_folder()
    bad = unusable_queries(tmp_path / "queries")
    flags = [] if form == "text" else [f"--{form}"]
    status, out, err = run_cli(capsys, "search", str(bad["missing_file"]), str(images[0]), str(bad["not_an_image"]),
                               "--originals", str(images[0].parent), "--model", str(folder), "--top-k", "2", *flags)
    assert status == 2
    answers = search_answers(form, out)
    assert answers[str(images[0])] == (2, None)
    for reason, path in bad.items():
        hits, error = answers[str(path)]
        assert hits == 0 and reason in error and str(path) in error
    assert len(err.strip().splitlines()) == 2 and all(str(path) in err for path in bad.values())
    status, out, _ = run_cli(capsys, "search", str(images[0]), "--originals", str(images[0].parent),
                             "--model", str(folder), *flags)
    assert status == 0 and search_answers(form, out)[str(images[0])][1] is None


@pytest.mark.parametrize("reason", ["missing_file", "not_an_image"])
def test_compare_answers_an_unusable_pair_in_its_json_with_why(capsys, tmp_path, model_folder, images, reason) -> None:
    folder = model_folder()
    bad = unusable_queries(tmp_path / "queries")[reason]
    status, out, err = run_cli(capsys, "compare", str(images[0]), str(bad), "--model", str(folder), "--json")
    assert status == 2 and len(err.strip().splitlines()) == 1 and reason in err and str(bad) in err
    if out:  # what the preflight cannot see from the header is answered as the pair's JSON, with why
        payload = json.loads(out)
        assert (payload["a"], payload["b"]) == (str(images[0]), str(bad)) and "model_score" not in payload
        assert reason in payload["error"] and str(bad) in payload["error"]


def test_index_text_says_what_its_json_says(capsys, tmp_path, model_folder, images) -> None:
    folder, originals = model_folder(), tmp_path / "originals"
    originals.mkdir()
    for path in images:
        (originals / path.name).write_bytes(path.read_bytes())
    (originals / "broken.png").write_text("not an image")
    common = ["index", str(originals), "--out", str(tmp_path / "index"), "--model", str(folder)]
    assert run_cli(capsys, *common)[0] == 0
    status, text, _ = run_cli(capsys, *common)
    status_json, out, _ = run_cli(capsys, *common, "--json")
    report = json.loads(out)
    assert status == status_json == 0 and (report["unchanged"], report["hashed"]) == (len(images) + 1, 0)
    for key in ("embedded", "hashed", "unchanged"):
        assert f"{report[key]} {key}" in text
    assert f"{len(report['skipped'])} skipped" in text and "broken.png: not_an_image" in text
