"""A folder's originals: their ids, and the artist and title its metadata CSV gives them (a bad CSV is ignored)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from artsim.index.build import update_index
from artsim.index.folder import folder_collection
from tests.index.test_build import PixelEmbedder

HEADER = "filename,artist,title,year,style,genre\n"


def make_folder(root: Path, csv_text: str | None) -> Path:
    for relative in ("Impressionism/claude-monet_water-lilies-1916.jpg", "loose.png"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / relative)
    if csv_text is not None:
        (root / "metadata.csv").write_text(csv_text, encoding="utf-8")
    return root


def labels(root: Path) -> dict[str, tuple[str, str]]:
    return {o.id: (o.artist, o.title) for o in folder_collection(root).originals}


def test_artist_and_title_come_from_the_metadata_csv(tmp_path):
    root = make_folder(tmp_path, HEADER + "Impressionism/claude-monet_water-lilies-1916.jpg,Claude Monet,Water Lilies,"
                       "1916,Impressionism,landscape\n")
    assert labels(root) == {"Impressionism/claude-monet_water-lilies-1916.jpg": ("Claude Monet", "Water Lilies"),
                            "loose.png": ("", "loose")}
    assert folder_collection(root).problems == {}


def test_without_a_csv_the_title_is_the_stem(tmp_path):
    root = make_folder(tmp_path, None)
    assert labels(root)["Impressionism/claude-monet_water-lilies-1916.jpg"] == ("", "claude-monet_water-lilies-1916")


def test_hostile_rows_are_reported_and_ignored(tmp_path):
    root = make_folder(tmp_path, HEADER + "../outside.jpg,Evil,Escape,,,\nmissing.jpg,Nobody,Nothing,,,\n"
                       ",No,File,,,\nloose.png,An Artist,A Title,,,\n")
    (tmp_path.parent / "outside.jpg").write_bytes(b"x")
    collection = folder_collection(root)
    assert labels(root)["loose.png"] == ("An Artist", "A Title")
    assert {o.artist for o in collection.originals} == {"", "An Artist"}
    assert {"../outside.jpg", "missing.jpg", "metadata.csv:4"} <= set(collection.problems)
    assert len(collection.originals) == 2


def test_a_csv_without_a_filename_column_is_ignored_as_a_whole(tmp_path):
    root = make_folder(tmp_path, "name,artist\nloose.png,Someone\n")
    collection = folder_collection(root)
    assert labels(root)["loose.png"] == ("", "loose")
    assert len(collection.problems) == 1 and "filename" in next(iter(collection.problems.values()))


def test_a_csv_that_is_not_text_is_ignored(tmp_path):
    root = make_folder(tmp_path, None)
    (root / "metadata.csv").write_bytes(b"\xff\xfe\x00\x01" * 50)
    assert labels(root)["loose.png"] == ("", "loose")
    assert folder_collection(root).problems


def test_an_index_takes_a_csv_added_later_without_embedding_again(tmp_path):
    root = make_folder(tmp_path / "folder", None)
    embedder = PixelEmbedder()
    update_index(tmp_path / "index", folder_collection(root), embedder)
    (root / "metadata.csv").write_text(HEADER + "loose.png,An Artist,A Title,,,\n", encoding="utf-8")
    index, _ = update_index(tmp_path / "index", folder_collection(root), embedder)
    row = index.entries.ids.index("loose.png")
    assert (index.entries.artists[row], index.entries.titles[row]) == ("An Artist", "A Title")
    assert embedder.embedded == 2  # each image once, on the first build
