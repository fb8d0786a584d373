"""`artsim compare --pairs`: every pair of a CSV answered in order, an unusable one with why, paths read from
the CSV's folder, status 2 when any row failed (a small untrained model, seconds)."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import cv2
import pytest
import torch

import artsim
from artsim.app import bulk
from artsim.app.api import Scorer, open_image
from artsim.app.cli import main
from artsim.app.render import pairs_header
from tests.support.helpers import random_painting

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



@pytest.fixture()
def pairs_folder(tmp_path) -> Path:
    """A CSV's folder with its images under images/, as a dataset ships them."""
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    for seed in range(3):
        random_painting(seed).save(folder / "images" / f"p{seed}.png")
    (folder / "images" / "notes.png").write_text("not an image")
    return folder


def run_pairs(capsys, csv_path: Path, model_dir: Path, rows: list[tuple[str, str]]) -> tuple[int, list[dict], str]:
    csv_path.write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows))
    status = main(["compare", "--pairs", str(csv_path), "--model", str(model_dir)])
    captured = capsys.readouterr()
    return status, list(csv.DictReader(io.StringIO(captured.out))), captured.err


def test_relative_paths_are_read_from_the_csv_folder_absolute_ones_as_given(capsys, tmp_path, pairs_folder, model_dir,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the CSV's folder: a path read from here would be missing
    absolute = str(pairs_folder / "images" / "p2.png")
    rows = [("images/p0.png", "images/p1.png"), ("images/p1.png", absolute)]
    status, out, err = run_pairs(capsys, pairs_folder / "pairs.csv", model_dir, rows)
    assert status == 0, err
    assert [(r["a"], r["b"]) for r in out] == rows  # the paths as written, to join on
    assert all(r["error"] == "" and 0 <= float(r["model_score"]) <= 1 for r in out)


def test_an_unusable_row_costs_only_itself_and_the_status_is_2(capsys, pairs_folder, model_dir):
    rows = [("images/p0.png", "images/missing.png"), ("images/p0.png", "images/p1.png"),
            ("images/notes.png", "images/p2.png"), ("", "images/p2.png")]
    status, out, err = run_pairs(capsys, pairs_folder / "pairs.csv", model_dir, rows)
    assert status == 2
    assert [(r["a"], r["b"]) for r in out] == rows
    assert "missing_file" in out[0]["error"] and str(pairs_folder / "images" / "missing.png") in out[0]["error"]
    assert out[1]["error"] == "" and out[1]["model_score"] != ""
    assert "not_an_image" in out[2]["error"] and out[2]["model_score"] == ""
    assert out[3]["error"] == "empty path"
    assert [line.split(":")[0] for line in err.strip().splitlines()] == ["artsim"] * 3
    assert all(f"line {n}" in line for n, line in zip((2, 4, 5), err.strip().splitlines()))


def test_json_is_refused_with_pairs_rather_than_ignored(capsys, pairs_folder):
    with pytest.raises(SystemExit) as stopped:
        main(["compare", "--pairs", str(pairs_folder / "pairs.csv"), "--json"])
    assert stopped.value.code == 2 and "CSV" in capsys.readouterr().err


def test_every_row_failing_is_status_2(capsys, pairs_folder, model_dir):
    status, out, _ = run_pairs(capsys, pairs_folder / "pairs.csv", model_dir, [("images/nope.png", "images/p0.png")])
    assert status == 2 and len(out) == 1 and "missing_file" in out[0]["error"]


def test_each_distinct_image_is_decoded_once_however_many_rows_and_batches_name_it(pairs_folder, model_dir,
                                                                                  monkeypatch):
    decoded: list[Path] = []

    def counting_open(source):
        decoded.append(Path(source))
        return open_image(source)

    monkeypatch.setattr(bulk, "open_image", counting_open)
    names = [f"images/p{seed}.png" for seed in range(3)]
    rows = [(a, b) for a in names for b in names if a != b] * 2 + [("images/p0.png", "images/missing.png")]
    scorer = artsim.load(model_dir)
    found = list(bulk.compare_pairs(scorer, rows, batch_size=2, base=pairs_folder, workers=0))
    assert [(row[0], row[1]) for row in found] == rows
    assert sorted(decoded) == sorted(pairs_folder / name for name in [*names, "images/missing.png"])


def test_rows_from_worker_processes_equal_the_single_pair_path(pairs_folder, model_dir):
    for seed in range(3, 8):
        random_painting(seed, size=(160, 130)).save(pairs_folder / "images" / f"p{seed}.png")
    names = [f"images/p{seed}.png" for seed in range(8)]
    rows = [(names[i], names[(i * 3 + 1) % 8]) for i in range(8)] + [("images/notes.png", "images/p1.png")]
    scorer = artsim.load(model_dir)
    found = list(bulk.compare_pairs(scorer, rows, batch_size=3, base=pairs_folder, workers=2))
    head = pairs_header(scorer.descriptor.weights.as_dict())
    for (a, b), row in zip(rows, found):
        cells = dict(zip(head, row))
        if a.endswith("notes.png"):
            assert "not_an_image" in cells["error"] and cells["model_score"] == ""
            continue
        single = scorer.score(pairs_folder / a, pairs_folder / b)
        assert cells["error"] == "" and cells["verdict"] == scorer.verdict(single.model_score).verdict
        assert abs(cells["model_score"] - single.model_score) <= 1e-6
        assert abs(cells["descriptor_score"] - single.descriptor_score) <= 1e-6
        assert all(abs(cells[name] - single.similarities[name]) <= 1e-6 for name in single.similarities)


def test_each_worker_decodes_describes_and_embeds_on_one_thread_the_main_process_only_pairs(pairs_folder, model_dir,
                                                                                            monkeypatch):
    """One process per core, one thread each: threads inside the workers would oversubscribe the cores, and a
    trunk in the main process would wait on the workers' cores (forked workers inherit the patch)."""
    main_process, embed = os.getpid(), Scorer.embed_resized

    def embed_in_a_worker(self, resized):
        assert os.getpid() != main_process, "the trunk ran in the main process"
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
        return embed(self, resized)

    monkeypatch.setattr(Scorer, "embed_resized", embed_in_a_worker)
    rows = [(f"images/p{a}.png", f"images/p{b}.png") for a in range(3) for b in range(3) if a != b]
    found = list(bulk.compare_pairs(artsim.load(model_dir), rows, batch_size=2, base=pairs_folder, workers=2))
    assert [row[-1] for row in found] == [""] * len(rows) and all(0 <= row[2] <= 1 for row in found)


@pytest.mark.parametrize("images,batch_size,workers", [(400, 32, 2), (33, 32, 2), (5, 32, 4), (100, 7, 3), (1, 32, 2)])
def test_the_batches_keep_every_worker_busy_to_the_last_round(images, batch_size, workers):
    per_batch = bulk._even_batch(images, batch_size, workers)
    batches, rounds = -(-images // per_batch), -(-images // (batch_size * workers))
    assert 1 <= per_batch <= batch_size
    # As few rounds as batches of batch_size need, and no round but the last with an idle worker.
    assert (rounds - 1) * workers < batches <= rounds * workers


def test_a_csv_without_rows_gives_none(model_dir):
    assert list(bulk.compare_pairs(artsim.load(model_dir), [], workers=2)) == []
