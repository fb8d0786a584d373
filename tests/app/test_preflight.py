"""Every command checks its files before torch or the model: an unusable input exits 2 at once with one line
naming it and why; one pixel limit (ingest's `max_pixels` default) for the CLI and the server, checked from the
header, with no library warning; `search` answers its good queries when only some are bad."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from artsim.app.cli import main
from artsim.app.serve import create_app
from artsim.app.service import load_state
from artsim.params import IngestParams
from tests.ingest.test_run_untrusted import png_header_only

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
LIMIT = IngestParams.model_fields["max_pixels"].default
# Runs the command and says on stderr, last, whether torch was imported.
WRAPPER = ("import sys\nfrom artsim.app.cli import main\nstatus = main(sys.argv[1:])\n"
           "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\nsys.exit(status)")


def bad_input(folder: Path, kind: str) -> tuple[Path, str]:
    """An unusable input of `kind`, and a word its reason must contain."""
    path = folder / {"empty": "empty.jpg", "folder": "folder.jpg", "text": "notes.jpg", "bomb": "bomb.png",
                     "over_the_limit": "100mp.png", "fifo": "pipe.png", "missing": "missing.png"}[kind]
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("not an image at all")
    elif kind == "bomb":
        path.write_bytes(png_header_only(100_000, 100_000))
    elif kind == "over_the_limit":  # between PIL's own limit and twice it: PIL would only warn
        path.write_bytes(png_header_only(10_000, 10_000))
    elif kind == "fifo":
        os.mkfifo(path)
    return path, {"empty": "empty", "folder": "folder", "text": "not_an_image", "bomb": f"{LIMIT:,}",
                  "over_the_limit": f"{LIMIT:,}", "fifo": "FIFO", "missing": "missing"}[kind]


def run_cli(*args: str) -> tuple[int, str, str, bool]:
    """Status, stdout, stderr (the marker line removed) and whether torch was imported, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=120,
                          check=False,
                          env={**os.environ, "PYTHONWARNINGS": "default"})
    *err, marker = done.stderr.strip().splitlines()
    return done.returncode, done.stdout, "\n".join(err), marker.endswith("True")


KINDS = ["empty", "folder", "text", "bomb", "over_the_limit", "fifo", "missing"]


@pytest.mark.parametrize("kind", KINDS)
def test_compare_refuses_an_unusable_image_before_torch_in_one_line(tmp_path, model_dir, paintings, kind):
    bad, reason = bad_input(tmp_path, kind)
    status, out, err, torch_imported = run_cli("compare", str(paintings / "painting_0.png"), str(bad),
                                               "--model", str(model_dir))
    assert status == 2 and out == "" and not torch_imported
    assert len(err.splitlines()) == 1 and str(bad) in err and reason in err, err
    assert "Warning" not in err and "decompression bomb" not in err


def test_a_single_search_query_too_large_is_refused_before_torch(tmp_path, model_dir, paintings):
    bad, reason = bad_input(tmp_path, "bomb")
    status, _, err, torch_imported = run_cli("search", str(bad), "--originals", str(paintings),
                                             "--model", str(model_dir))
    assert status == 2 and not torch_imported and len(err.splitlines()) == 1 and reason in err and "Warning" not in err


def test_search_with_no_usable_query_names_each_and_stops_before_torch(tmp_path, model_dir, paintings):
    bad = [bad_input(tmp_path, kind)[0] for kind in ("empty", "text", "fifo")]
    status, out, err, torch_imported = run_cli("search", *map(str, bad), "--originals", str(paintings),
                                               "--model", str(model_dir))
    lines = err.splitlines()
    assert status == 2 and out == "" and not torch_imported
    assert [line.split(": unusable image")[0] for line in lines[:-1]] == [f"artsim: query {path}" for path in bad]
    assert lines[-1] == "artsim: error: none of the 3 query images can be used"


@pytest.mark.parametrize("args, named, unnamed", [
    (["index", "{empty}"], "{empty}: no image file", "--originals"),
    (["index", "{missing}"], "{missing}: no such folder", "--originals"),
    (["search", "{query}", "--originals", "{empty}"], "--originals {empty}: no image file", None),
    (["search", "{query}", "--index", "{missing}"], "--index {missing}: no such folder", None),
    (["search", "--queries-file", "{fifo}"], "--queries-file {fifo}: not a regular file", None),
    (["compare", "--pairs", "{folder}"], "--pairs {folder}: not a regular file", None),
    (["compare", "{query}", "{query}", "--plot", "{plot_folder}"], "--plot {plot_folder}: is a folder", None),
    (["serve", "--originals", "{empty}"], "--originals {empty}: no image file", None),
])
def test_a_bad_file_or_folder_option_is_named_as_given_before_torch(tmp_path, model_dir, paintings, args, named,
                                                                   unnamed):
    places = {"empty": tmp_path / "empty", "missing": tmp_path / "missing", "folder": tmp_path / "folder",
              "fifo": tmp_path / "queries.txt", "query": paintings / "painting_0.png",
              "plot_folder": tmp_path / "plot.png"}  # the suffix is right (argparse checks it): a folder
    for folder in ("empty", "folder", "plot_folder"):
        places[folder].mkdir()
    os.mkfifo(places["fifo"])
    status, _, err, torch_imported = run_cli(*(a.format(**places) for a in args), "--model", str(model_dir))
    assert status == 2 and not torch_imported and len(err.splitlines()) == 1
    assert named.format(**places) in err and (unnamed is None or unnamed not in err), err


def test_search_answers_its_good_queries_and_exits_2_for_the_bad_ones(tmp_path, model_dir, paintings, capsys,
                                                                     monkeypatch):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    good = paintings / "painting_1.png"
    bad = [bad_input(tmp_path, kind)[0] for kind in ("bomb", "folder", "missing")]
    status = main(["search", str(bad[0]), str(good), str(bad[1]), str(bad[2]), "--originals", str(paintings),
                   "--model", str(model_dir), "--jsonl"])
    out, err = capsys.readouterr()
    results = [json.loads(line) for line in out.splitlines()]
    assert status == 2
    assert [r["query"] for r in results] == [str(bad[0]), str(good), str(bad[1]), str(bad[2])]
    assert results[1]["results"] and "error" not in results[1]
    assert all(r["error"] and not r["results"] for r in results[::2] + results[3:])
    assert f"{LIMIT:,}" in results[0]["error"] and all(str(path) in err for path in bad)


def test_the_server_refuses_a_bomb_with_the_same_limit_and_no_warning(model_dir, paintings, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    client = TestClient(create_app(load_state(Path("."), model=model_dir, originals=paintings)))
    assert client.get("/health").json()["limits"]["max_pixels"] == LIMIT
    good = (paintings / "painting_0.png").read_bytes()
    for width in (100_000, 10_000):  # far over PIL's own limit, and between it and twice it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = client.post("/compare", files={"a": ("big.png", png_header_only(width, width), "image/png"),
                                                      "b": ("b.png", good, "image/png")})
        assert response.status_code == 413 and response.json()["error"] == "too_many_pixels"
        assert f"over the limit of {LIMIT:,}" in response.json()["detail"] and "bomb" not in response.json()["detail"]
        assert not [w for w in caught if "DecompressionBomb" in type(w.message).__name__]
    pair = {"a": ("a.png", good, "image/png"), "b": ("b.png", good, "image/png")}
    assert client.post("/compare", files=pair).status_code == 200

