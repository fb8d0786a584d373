"""`artsim export dataset|image`: where the command may write, images by id or by location, and
every refusal as one line with status 2."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from artsim.app.cli import main
from artsim.core import layout
from tests.support.export_workspace import build_workspace, built_and_exported, stored_images


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return built_and_exported(tmp_path_factory.mktemp("export"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_dataset_replaces_only_an_earlier_export(exported, tmp_path, capsys):
    workspace, _ = exported
    out = tmp_path / "out"
    assert _run(capsys, "export", "dataset", str(out), "--workspace", str(workspace))[0] == 0
    code, _, err = _run(capsys, "export", "dataset", str(out), "--workspace", str(workspace))
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert _run(capsys, "export", "dataset", str(out), "--workspace", str(workspace), "--force")[0] == 0
    (out / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "export", "dataset", str(out), "--workspace", str(workspace), "--force")
    assert code == 2 and "notes.txt" in err and (out / "notes.txt").read_text() == "mine"
    code, _, err = _run(capsys, "export", "dataset", str(workspace / "data"), "--workspace", str(workspace), "--force")
    assert code == 2 and "pipeline output" in err


def test_export_image_by_id_and_by_location(exported, tmp_path, capsys):
    workspace, _ = exported
    stored = {**stored_images(workspace, layout.INGESTED), **stored_images(workspace, layout.GENERATED)}
    for ident in ("o2", "v-o1-0.75"):
        out = tmp_path / f"{ident}.jpg"
        assert _run(capsys, "export", "image", ident, str(out), "--workspace", str(workspace))[0] == 0
        assert (tmp_path / f"{ident}.jpg").read_bytes() == stored[ident]
    row = pd.read_parquet(workspace / layout.INGESTED / layout.MANIFEST).set_index("id").loc["o4"]
    location = f"{workspace / layout.INGESTED / row['shard']}#{row['offset']}+{row['length']}"  # as search prints it
    assert _run(capsys, "export", "image", location, str(tmp_path / "o4.jpg"), "--workspace", str(workspace))[0] == 0
    assert (tmp_path / "o4.jpg").read_bytes() == stored["o4"]


@pytest.mark.parametrize("ident, target, force, message", [
    ("nope", "new.jpg", False, "no original or variant"),
    ("data/ingested/shards/00.tar#512+1", "new.jpg", False, "no original or variant"),  # no manifest row names it
    ("o2", "taken.jpg", False, "exists; --force"),
    ("o2", "folder", True, "is a folder"),
    ("o2", "ws/data/ingested/o2.jpg", True, "pipeline output"),
])
def test_export_image_refuses_in_one_line(exported, tmp_path, capsys, ident, target, force, message):
    workspace, _ = exported
    (tmp_path / "taken.jpg").write_bytes(b"keep")
    (tmp_path / "folder").mkdir()
    out = workspace.parent / target if target.startswith("ws/") else tmp_path / target
    forced = ["--force"] if force else []
    code, _, err = _run(capsys, "export", "image", ident, str(out), "--workspace", str(workspace), *forced)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "taken.jpg").read_bytes() == b"keep" and not (tmp_path / "new.jpg").exists()


def test_export_image_overwrites_with_force(exported, tmp_path, capsys):
    workspace, _ = exported
    (tmp_path / "taken.jpg").write_bytes(b"old")
    out = tmp_path / "taken.jpg"
    assert _run(capsys, "export", "image", "o2", str(out), "--workspace", str(workspace), "--force")[0] == 0
    assert (tmp_path / "taken.jpg").read_bytes() == stored_images(workspace, layout.INGESTED)["o2"]


def test_a_damaged_manifest_stops_the_export_in_one_line_and_writes_nothing(tmp_path, capsys):
    workspace = build_workspace(tmp_path / "ws")
    path = workspace / layout.GENERATED / layout.MANIFEST
    pd.read_parquet(path).assign(shard="../../elsewhere.tar").to_parquet(path)
    code, _, err = _run(capsys, "export", "dataset", str(tmp_path / "out"), "--workspace", str(workspace))
    assert code == 2 and err.startswith("artsim: error: ") and "rerun its stage" in err  # before any progress bar
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]  # no export, no staging folder left
