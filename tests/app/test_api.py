"""artsim.load / the `artsim` command on a small untrained model folder (seconds, no pipeline run).

What needs a trained model on the sample (API == pipeline scores, search finds the source)
is in tests/e2e/test_use_model.py, on the end-to-end workspace.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import artsim
from artsim.app.api import ModelNotFound
from artsim.app.cli import main
from artsim.app.difference import difference_maps
from artsim.app.indexes import decoded_queries, index_collection, searcher_for
from artsim.core.shards import ShardMember, ShardWriter
from artsim.index.collection import Collection, Original
from artsim.index.folder import folder_collection
from artsim.learn.models import pair_transform
from artsim.params import DEFAULT_SCORE_WEIGHTS, DescribeParams, ScoreWeights
from artsim.score.scorer import DescriptorScoreFileError, DescriptorScorer
from tests.support.helpers import random_painting

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for seed in range(4):
        path = folder / f"painting_{seed}.png"
        random_painting(seed).save(path)
        paths.append(path)
    return paths


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- the API -------------------------------------------------------------------------------

def test_score_breaks_the_descriptor_score_down_and_an_image_matches_itself_best(model_dir, images):
    scorer = artsim.load(model_dir)
    itself = scorer.score(images[0], images[0])
    assert itself.descriptor_score == pytest.approx(1.0)
    assert set(itself.similarities) == set(DEFAULT_SCORE_WEIGHTS) and itself.weights == ScoreWeights().as_dict()
    others = [scorer.score(images[0], other) for other in images[1:]]
    assert all(o.descriptor_score < itself.descriptor_score for o in others)
    weighted = sum(others[0].weights[k] * others[0].similarities[k] for k in others[0].weights)
    assert others[0].descriptor_score == pytest.approx(weighted / sum(others[0].weights.values()))
    # The head is symmetric: the order of the two images does not matter.
    assert scorer.score(images[1], images[0]).model_score == pytest.approx(others[0].model_score, abs=1e-6)


def test_a_pil_image_scores_as_its_file_does(model_dir, images):
    scorer = artsim.load(model_dir)
    from_files = scorer.score(images[0], images[1])
    from_pil = scorer.score(Image.open(images[0]), Image.open(images[1]).convert("RGBA"))
    assert from_pil.model_score == pytest.approx(from_files.model_score, abs=1e-6)
    assert from_pil.descriptor_score == pytest.approx(from_files.descriptor_score, abs=1e-9)


def test_embed_gives_one_row_per_image_in_order(model_dir, images):
    scorer = artsim.load(model_dir)
    together = scorer.embed(images[:3])
    assert together.shape == (3, scorer.model.embedding_dim) == (3, 512)
    # Batches of different sizes take different kernels: equal to float32 round-off.
    np.testing.assert_allclose(scorer.embed(images[2]), together[2:3], rtol=1e-4, atol=1e-4)


def test_the_scorers_embedding_is_the_models_own(model_dir, images):
    """The scorer's figures are the model's own on a plain batch, as the pipeline computes them: a channels-last
    batch (~10% cheaper on CPU) moved model scores by ~1e-6 from the pipeline's, which a user would see."""
    scorer = artsim.load(model_dir)
    plain = torch.stack([pair_transform(scorer.image_size)(Image.open(path).convert("RGB")) for path in images])
    with torch.no_grad():
        expected = scorer.model.embed(plain.contiguous()).numpy()
    np.testing.assert_allclose(scorer.embed(images), expected, rtol=0, atol=1e-7)


def test_load_names_what_is_missing(tmp_path, model_dir):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(ModelNotFound, match="dvc repro"):
        artsim.load(tmp_path)
    with pytest.raises(ModelNotFound, match="no such"):
        artsim.load(tmp_path / "nowhere")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("card.json", "descriptor_score.json"):
        (damaged / name).write_bytes((model_dir / name).read_bytes())
    (damaged / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ModelNotFound, match="model.safetensors"):
        artsim.load(damaged)


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {
            "format": 1,
            "describe": {"size": 64},
            "weights": {"color": 1},
            "texture_stats": {"mean": [0] * 13, "std": [0] * 13},
        },
        {"format": 1, "describe": {"size": "big"}, "weights": {}, "texture_stats": {"mean": [0] * 13, "std": [1] * 13}},
        {"format": 1, "describe": {}, "weights": {}, "texture_stats": {"mean": [0] * 3, "std": [1] * 3}},
    ],
)
def test_a_damaged_descriptor_score_file_is_refused_with_a_reason(raw):
    with pytest.raises(DescriptorScoreFileError, match="descriptor_score.json"):
        DescriptorScorer.from_dict(raw)


def test_the_descriptor_score_file_round_trips(tmp_path, model_dir):
    scorer = DescriptorScorer.load(model_dir / "descriptor_score.json")
    scorer.save(tmp_path / "copy.json")
    assert DescriptorScorer.load(tmp_path / "copy.json").as_dict() == scorer.as_dict()


# --- the difference map --------------------------------------------------------------------

def test_the_difference_map_points_at_the_changed_part_of_the_canvas():
    painting = random_painting(3, size=(160, 160))
    changed = painting.copy()
    changed.paste((255, 255, 255), (120, 120, 160, 160))  # bottom-right corner only
    params = DescribeParams(size=160, edge_grid=4)
    same = difference_maps(painting, painting, params)
    assert same.color.max() == 0 and same.edges.max() == 0
    maps = difference_maps(painting, changed, params)
    assert maps.color.shape == (4, 4)
    assert np.unravel_index(np.argmax(maps.color), maps.color.shape) == (3, 3)
    assert maps.color[:3, :3].max() == pytest.approx(0, abs=1e-6)


# --- the command ---------------------------------------------------------------------------

def test_compare_prints_both_scores_as_json_and_plots(capsys, tmp_path, model_dir, images):
    plot = tmp_path / "plot.png"
    status, out, err = run_cli(capsys, "compare", str(images[0]), str(images[1]), "--model", str(model_dir),
                               "--json", "--plot", str(plot))
    assert status == 0, err
    payload = json.loads(out)
    assert {"a", "b", "model_score", "descriptor_score", "similarities", "weights", "plot"} <= set(payload)
    assert 0 <= payload["model_score"] <= 1 and 0 <= payload["descriptor_score"] <= 1
    assert Image.open(plot).size[0] > 200


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def hostile_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    files = {
        "empty": folder / "empty.jpg",
        "text": folder / "notes.jpg",
        "truncated": folder / "truncated.png",
        "bomb": folder / "bomb.png",
        "folder": folder / "a_folder.png",
        "missing": folder / "missing.png",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("not an image")
    buffer = folder / "whole.png"
    random_painting(1).save(buffer)
    files["truncated"].write_bytes(buffer.read_bytes()[:200])
    # A PNG header claiming 100000 x 100000 pixels: refused from the header, never decoded.
    files["bomb"].write_bytes(png_header_only(100_000, 100_000))
    files["folder"].mkdir()
    return files


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "bomb", "folder", "missing"])
def test_a_hostile_image_exits_2_naming_it(capsys, tmp_path, model_dir, images, kind):
    hostile = hostile_files(tmp_path / "hostile")[kind]
    status, out, err = run_cli(capsys, "compare", str(images[0]), str(hostile), "--model", str(model_dir))
    assert status == 2 and "model score" not in out
    # Caught from its header before torch (artsim.app.preflight): one line; else the pair is printed, then why.
    assert out == "" or str(hostile) in out[out.index("\nerror "):]
    assert len(err.strip().splitlines()) == 1 and str(hostile) in err and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["compare", "only-one.png"],
    ["search", "q.png", "--top-k", "0"],
    ["search", "q.png", "--top-k", "many"],
    ["frobnicate"],
])
def test_a_bad_option_exits_2_with_one_line(capsys, args):
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_no_trained_model_says_to_run_dvc_repro(capsys, tmp_path, images):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    status, _, err = run_cli(capsys, "compare", str(images[0]), str(images[1]), "--workspace", str(tmp_path))
    assert status == 2 and "dvc repro" in err and len(err.strip().splitlines()) == 1


def test_search_a_folder_ranks_best_first_and_skips_a_broken_candidate(capsys, tmp_path, model_dir, images):
    folder = tmp_path / "originals"
    folder.mkdir()
    for path in images:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_text("not an image")
    status, out, err = run_cli(capsys, "search", str(images[2]), "--originals", str(folder), "--model", str(model_dir),
                               "--top-k", "3", "--json")
    assert status == 0, err
    payload = json.loads(out)
    results = payload["results"]
    assert [r["rank"] for r in results] == [1, 2, 3]
    assert {"rank", "score", "artist", "title", "path"} <= set(results[0])
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert payload["skipped"] == [{"path": str(folder / "broken.jpg"), "reason": "not_an_image"}]
    assert "broken.jpg" in err and all("broken" not in r["path"] for r in results)


def test_search_among_shard_members_leaves_out_one_beyond_its_shard(tmp_path, model_dir, images):
    scorer = artsim.load(model_dir)
    with ShardWriter(tmp_path / "shards") as shards:
        located = [shards.add(f"images/{p.name}", p.read_bytes(), "aa") for p in images]
    members = [ShardMember(tmp_path / shard, offset, length) for shard, offset, length in located]
    beyond = ShardMember(members[0].shard, members[0].offset, members[0].length + 10**9)
    originals = [Original(f"o{i}", m, "", f"painting {i}") for i, m in enumerate([beyond, *members[1:]])]
    searcher = searcher_for(scorer, index_collection(scorer, Collection(tmp_path, originals), tmp_path / "index"))
    [result] = searcher.search(decoded_queries([images[1]]), 3, "model")
    assert sorted(h.id for h in result.hits) == [f"o{i}" for i in range(1, len(originals))]
    assert len(searcher.skipped) == 1 and "truncated_shard" in next(iter(searcher.skipped.values()))


def test_a_shortlist_of_one_still_returns_what_it_can(model_dir, images, tmp_path):
    scorer = artsim.load(model_dir)
    opened = index_collection(scorer, folder_collection(images[0].parent), tmp_path / "index")
    [result] = searcher_for(scorer, opened, shortlist=1).search(decoded_queries([images[0]]), 2, "model")
    assert len(result.hits) == 2  # the shortlist never holds fewer than top_k


def test_the_console_script_runs_and_fails_in_one_line(tmp_path):
    """The `artsim` entry point of pyproject, as a user runs it: a missing model is one line, status 2."""
    script = Path(sys.executable).with_name("artsim")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "artsim.app.cli"]
    result = subprocess.run([*command, "compare", "a.png", "b.png", "--workspace", str(tmp_path / "nowhere")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "nowhere" in result.stderr


def test_the_model_card_names_the_score_data_and_params_but_no_local_folder(model_dir):
    import pandas as pd

    from artsim.siamese.model_card import model_card, training_data_summary

    pairs = pd.DataFrame({"split": ["train", "train", "test"], "positive": [True, False, True]})
    originals = pd.DataFrame({"id": ["a", "b"], "split": ["train", "test"], "style": ["Ukiyo_e", "Baroque"]})
    generated = pd.DataFrame(
        {"backend": ["style_transfer"] * 2, "model": ["magenta-arbitrary"] * 2, "strength": [0.25, 0.5]}
    )
    from artsim.params import SiameseParams
    from artsim.siamese.train import SiameseResult, siamese_card

    params = SiameseParams(epochs=8, feature_cache="/home/someone/.cache/artsim/features", loader_workers=4)
    card = siamese_card(SiameseResult(None, 0.5, {"val_mse": 0.01}, []), params, seed=42)
    text = model_card(
        card,
        DescriptorScorer.load(model_dir / "descriptor_score.json"),
        training_data_summary(pairs, originals, generated),
    )
    assert (
        "not a measure of human" in text
        and f"weight {DEFAULT_SCORE_WEIGHTS['layout']}" in text
        and "Ukiyo_e (1)" in text
    )
    assert "magenta-arbitrary" in text and "| val_mse | 0.0100 |" in text and "artsim.load" in text
    assert "verdict.json" in text and "90% and 99% precision" in text  # where the thresholds are shipped
    assert "/home/someone" not in text and "loader_workers" not in text and '"epochs": 8' in text
    assert "feature_cache" not in card["params"] and "processes" not in card["params"]
