"""Search through the index and bulk compare, on a small untrained model (seconds, no pipeline run):
the Searcher ranks as the per-query search did (tests/support/search_oracle.py), many queries and pairs give
what single calls give, and the command starts without importing torch for --help, a bad option or a missing file."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import artsim
from artsim.app.bulk import compare_pairs
from artsim.app.indexes import cached_index_folder, decoded_queries, index_collection, open_index, searcher_for
from artsim.app.render import pairs_header
from artsim.core.fusion import RRF_K
from artsim.core.shards import ShardWriter
from artsim.index.collection import workspace_collection
from artsim.index.folder import folder_collection
from tests.app.conftest import model_dir  # noqa: F401  (a fixture)
from tests.app.test_api import images, run_cli  # noqa: F401  (fixtures)
from tests.support.helpers import SAMPLE_DIR, random_painting
from tests.support.search_oracle import EmbeddingCache, search

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def scorer(model_dir):  # noqa: F811
    return artsim.load(model_dir)


def search_index(scorer, opened, queries, top_k=5, shortlist=100, ranking="model"):
    """The Searcher of `artsim search` over an opened index, the queries decoded as the command decodes them."""
    return list(searcher_for(scorer, opened, shortlist).search(decoded_queries(queries), top_k, ranking))


def test_by_model_the_index_ranks_the_sample_as_the_per_query_search_did(scorer, tmp_path):
    opened = index_collection(scorer, folder_collection(SAMPLE_DIR), tmp_path / "index")
    queries = [str(p) for p in sorted(SAMPLE_DIR.rglob("*.jpg"))[:3]] + [str(tmp_path / "q.png")]
    random_painting(3).save(queries[-1])
    found = search_index(scorer, opened, queries, top_k=10, shortlist=20, ranking="model")
    for query, result in zip(queries, found):
        reference = search(scorer, query, folder_collection(SAMPLE_DIR).originals, top_k=10, shortlist=20,
                           cache=EmbeddingCache(tmp_path / "cache", scorer.fingerprint))
        assert [h.path for h in result.hits] == [h.path for h in reference.hits]
        np.testing.assert_allclose(
            [h.score for h in result.hits], [h.score for h in reference.hits], rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose([h.cosine for h in result.hits], [h.cosine for h in reference.hits], atol=1e-5)


def shard_workspace(workspace: Path, images: list[Path]) -> Path:  # noqa: F811
    """A workspace whose ingested originals o0, o1, … are `images` as shard members (artist "a", title the stem)."""
    root = workspace / "data" / "ingested"
    with ShardWriter(root / "shards") as shards:
        located = [shards.add(f"images/{p.name}", p.read_bytes(), "aa") for p in images]
    pd.DataFrame(
        {
            "id": [f"o{i}" for i in range(len(images))],
            "path": [f"images/{p.name}" for p in images],
            "shard": [s for s, _, _ in located],
            "offset": [o for _, o, _ in located],
            "length": [n for _, _, n in located],
            "artist": ["a"] * len(images),
            "title": [p.stem for p in images],
        }
    ).to_parquet(root / "manifest.parquet")
    return workspace


def test_a_workspace_index_of_shard_members_ranks_as_the_per_query_search(scorer, tmp_path, images):  # noqa: F811
    shard_workspace(tmp_path, images)
    opened = index_collection(scorer, workspace_collection(tmp_path), tmp_path / "index")
    [result] = search_index(scorer, opened, [str(images[1])], top_k=4)
    reference = search(scorer, images[1], workspace_collection(tmp_path).originals, top_k=4,
                       cache=EmbeddingCache(tmp_path / "c", scorer.fingerprint))
    assert [h.path for h in result.hits] == [h.path for h in reference.hits]
    assert [h.title for h in result.hits] == [h.title for h in reference.hits] and {h.artist for h in result.hits} == {
        "a"
    }


def test_phash_finds_the_query_itself_first_and_fused_is_the_rrf_of_the_model_and_phash_ranks(scorer, tmp_path, images):  # noqa: F811
    opened = index_collection(scorer, folder_collection(images[0].parent), tmp_path / "index")
    [by_phash] = search_index(scorer, opened, [str(images[2])], top_k=len(images), ranking="phash")
    assert Path(by_phash.hits[0].path).name == images[2].name and by_phash.hits[0].score == 1.0
    [by_model] = search_index(scorer, opened, [str(images[2])], top_k=len(images), ranking="model")
    [fused] = search_index(scorer, opened, [str(images[2])], top_k=len(images), ranking="fused")
    phash_scores = {h.path: h.score for h in by_phash.hits}
    phash_rank = {
        path: 1 + sum(other > score for other in phash_scores.values()) for path, score in phash_scores.items()
    }  # ties share
    expected = {h.path: 1 / (RRF_K + h.rank) + 1 / (RRF_K + phash_rank[h.path]) for h in by_model.hits}
    assert {h.path: h.score for h in fused.hits} == pytest.approx(expected)
    assert [h.score for h in fused.hits] == sorted(expected.values(), reverse=True)


def test_many_queries_one_result_each_in_order_and_a_bad_query_costs_only_its_result(
    capsys, tmp_path, model_dir, images  # noqa: F811
):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    listed = tmp_path / "queries.txt"
    listed.write_text(f"{images[3]}\n\n")
    status, out, err = run_cli(
        capsys,
        "search",
        str(images[0]),
        str(broken),
        "--queries-file",
        str(listed),
        "--originals",
        str(images[0].parent),
        "--model",
        str(model_dir),
        "--top-k",
        "2",
        "--jsonl",
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 2 and [line["query"] for line in lines] == [str(images[0]), str(broken), str(images[3])]
    assert [len(line["results"]) for line in lines] == [2, 0, 2] and "not_an_image" in lines[1]["error"]
    assert "broken.png" in err
    status, out, _ = run_cli(capsys, "search", "--queries", str(images[0].parent), "--originals", str(images[0].parent),
                             "--model", str(model_dir), "--csv", "--top-k", "1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and [Path(r["query"]).name for r in rows] == [p.name for p in images]


def test_the_second_search_of_a_folder_reads_none_of_its_unchanged_images(scorer, tmp_path, images):  # noqa: F811
    folder = tmp_path / "originals"
    folder.mkdir()
    for path in images:
        (folder / path.name).write_bytes(path.read_bytes())
    first = open_index(scorer, None, folder, tmp_path)
    second = open_index(scorer, None, folder, tmp_path)
    assert first.folder == second.folder == cached_index_folder(folder)
    assert (first.report.embedded, second.report.hashed, second.report.embedded) == (len(images), 0, 0)


def test_bulk_compare_gives_each_pair_what_a_single_compare_gives(scorer, tmp_path, images):  # noqa: F811
    broken = tmp_path / "broken.jpg"
    broken.write_text("no")
    pairs = [(str(images[0]), str(images[1])), (str(broken), str(images[1])), (str(images[2]), str(images[2])),
             (str(images[0]), str(images[1])), (str(images[3]), str(tmp_path / "missing.png"))]
    rows = list(compare_pairs(scorer, pairs, batch_size=2))
    head = pairs_header(scorer.descriptor.weights.as_dict())
    assert len(rows) == len(pairs) and all(len(row) == len(head) for row in rows)
    for (a, b), row in zip(pairs, rows):
        found = dict(zip(head, row))
        assert (found["a"], found["b"]) == (a, b)
        if "broken" in a or "missing" in b:
            assert found["model_score"] == "" and found["error"]
            continue
        single = scorer.score(a, b)
        assert found["descriptor_score"] == single.descriptor_score and found["error"] == ""
        assert found["model_score"] == pytest.approx(single.model_score, abs=1e-5)
        assert all(found[name] == single.similarities[name] for name in single.similarities)


def test_compare_pairs_writes_a_csv_with_a_header_and_a_row_per_pair(capsys, tmp_path, model_dir, images):  # noqa: F811
    pairs_file, out_file = tmp_path / "pairs.csv", tmp_path / "scores.csv"
    pairs_file.write_text(f"a,b\n{images[0]},{images[1]}\n{images[1]},{tmp_path / 'gone.png'}\n")
    status, _, err = run_cli(
        capsys, "compare", "--pairs", str(pairs_file), "--out", str(out_file), "--model", str(model_dir)
    )
    rows = list(csv.DictReader(out_file.open()))
    assert status == 2 and "gone.png" in err  # a row failed: it keeps its row, with why
    assert (
        [r["b"] for r in rows] == [str(images[1]), str(tmp_path / "gone.png")]
        and rows[1]["error"]
        and not rows[0]["error"]
    )
    pairs_file.write_text("left,right\nx,y\n")
    status, _, err = run_cli(capsys, "compare", "--pairs", str(pairs_file), "--model", str(model_dir))
    assert status == 2 and "columns a and b" in err


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["compare", "one.png"], ["search", "missing.png"],
                                  ["compare", "--pairs", "missing.csv"], ["index", "no-such-folder"]])
def test_the_command_answers_help_and_mistakes_without_importing_torch(tmp_path, args):
    probe = (
        "import sys\nfrom artsim.app.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'faiss', 'pandas', 'artsim.app.api') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def test_the_default_ranking_is_what_evaluate_shipped_for_these_weights(tmp_path, model_dir):  # noqa: F811
    from artsim.app.indexes import default_ranking
    from artsim.evaluate.verdict import ShippedThresholds, Thresholds
    from artsim.learn.model_folder import weights_hash

    folder = tmp_path / "models" / "siamese"
    shutil.copytree(model_dir, folder)
    assert default_ranking(artsim.load(folder)) == "model"
    thresholds = Thresholds({0.9: 0.5, 0.99: 0.8}, {0.9: 1.0, 0.99: 0.5}, 10, 10)
    ShippedThresholds(weights_hash(folder), thresholds, default_by="phash").save(folder.parent / "verdict.json")
    assert default_ranking(artsim.load(folder)) == "phash"
    ShippedThresholds("0" * 64, thresholds, default_by="phash").save(folder.parent / "verdict.json")  # other weights
    assert default_ranking(artsim.load(folder)) == "model"


def test_a_lone_unusable_query_is_answered_with_its_error(capsys, tmp_path, model_dir, images):  # noqa: F811
    hostile = tmp_path / "query.jpg"
    hostile.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    status, out, err = run_cli(
        capsys, "search", str(hostile), "--originals", str(images[0].parent), "--model", str(model_dir)
    )
    # No usable query: refused from its header before the model loads (artsim.app.preflight), in one line.
    assert status == 2 and "rank" not in out and len(err.strip().splitlines()) == 1 and "query.jpg" in err
    assert out == "" or (str(hostile) in out.split("\nerror ")[0] and "corrupt_image" in out)


def search_forms(capsys, *args: str) -> dict[str, str]:
    """`artsim search ARGS` printed in each form."""
    printed = {}
    for form in ("text", "json", "jsonl", "csv"):
        status, printed[form], err = run_cli(capsys, "search", *args, *([] if form == "text" else [f"--{form}"]))
        assert status == 0, err
    return printed


def test_workspace_hits_name_title_artist_and_the_id_export_image_opens(capsys, tmp_path, model_dir,  # noqa: F811
                                                                       images):  # noqa: F811
    workspace = shard_workspace(tmp_path / "ws", images)
    printed = search_forms(capsys, str(images[2]), "--workspace", str(workspace), "--model", str(model_dir),
                           "--top-k", "2")
    hits = json.loads(printed["json"])["results"]
    assert json.loads(printed["jsonl"])["results"] == hits
    assert [h["export_id"] for h in hits] == [h["id"] for h in hits] and "#" in hits[0]["path"]  # a shard member
    rows = list(csv.DictReader(io.StringIO(printed["csv"])))
    assert [(r["export_id"], r["title"], r["artist"]) for r in rows] == [(h["id"], h["title"], "a") for h in hits]
    for hit in hits:
        # text: "Title — Artist" on the hit's line, what opens it on the next (artsim.app.render.search_text)
        assert f"{hit['title']} — a\n" in printed["text"] and f" export {hit['id']}\n" in printed["text"]
        out = tmp_path / f"{hit['id']}.png"
        status, _, err = run_cli(capsys, "export", "image", hit["export_id"], str(out), "--workspace", str(workspace))
        assert status == 0, err
        assert out.read_bytes() == images[int(hit["id"][1:])].read_bytes()


def test_folder_hits_name_title_and_artist_from_its_csv_and_the_file(capsys, tmp_path, model_dir, images):  # noqa: F811
    folder = tmp_path / "folder"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "metadata.csv").write_text("filename,artist,title\n" + "".join(
        f"{p.name},Artist {i},Title {i}\n" for i, p in enumerate(images)), encoding="utf-8")
    printed = search_forms(capsys, str(images[1]), "--originals", str(folder), "--model", str(model_dir),
                           "--top-k", "2")
    hits = json.loads(printed["json"])["results"]
    assert all(h["export_id"] is None and Path(h["path"]).is_file() for h in hits)
    named = {p.name: i for i, p in enumerate(images)}
    assert [(h["title"], h["artist"]) for h in hits] == [(f"Title {named[h['id']]}", f"Artist {named[h['id']]}")
                                                         for h in hits]
    rows = list(csv.DictReader(io.StringIO(printed["csv"])))
    assert [(r["path"], r["export_id"]) for r in rows] == [(h["path"], "") for h in hits]
    for hit in hits:
        assert f"{hit['title']} — {hit['artist']}\n" in printed["text"] and f" {hit['path']}\n" in printed["text"]
