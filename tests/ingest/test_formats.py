"""The WikiArt distribution formats, built small in code, and subset selection."""
import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from artsim.ingest.run import IngestSettings, ingest, read_manifest, select_subset
from artsim.ingest.sources.formats import SourceError, SourceImage, SourceProblem, detect_format, read_source
from tests.support.helpers import random_painting

FILES = [
    ("Impressionism/claude-monet_water-lilies-1916.jpg", "Impressionism", "landscape"),
    ("Impressionism/edgar-degas_dancers.jpg", "Impressionism", "genre_painting"),
    ("Cubism/pablo-picasso_guitar-1913.jpg", "Cubism", "still_life"),
    ("Baroque/rembrandt_night-watch-1642.jpg", "Baroque", "portrait"),
]


def write_tree(root: Path) -> None:
    for seed, (relative, _, _) in enumerate(FILES):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        random_painting(seed).save(root / relative)


def ingest_source(root: Path, tmp_path: Path, fmt: str = "auto", split: str = "hash") -> tuple[pd.DataFrame, dict]:
    report = ingest(read_source(root, fmt), tmp_path / "out", IngestSettings(split_method=split, val_fraction=0.0))
    manifest = read_manifest(tmp_path / "out")
    return manifest.set_index("source_path"), {**report.as_metrics(), "skipped_by_reason": report.skipped_by_reason}


def test_kaggle_classes_csv_gives_style_lists_and_split(tmp_path):
    root = tmp_path / "kaggle"
    write_tree(root)
    rows = [
        {"filename": rel, "artist": rel.split("/")[1].split("_")[0].replace("-", " ").title(), "genre": f"['{style}']",
         "description": Path(rel).stem.split("_")[1], "phash": "abc", "width": 120, "height": 90, "genre_count": 1,
         "subset": "test" if i == 0 else "train"}
        for i, (rel, style, _) in enumerate(FILES)
    ]
    pd.DataFrame(rows).to_csv(root / "classes.csv", index=False, encoding="utf-8-sig")
    assert detect_format(root) == "folder"
    manifest, metrics = ingest_source(root, tmp_path, split="from_source")
    assert metrics["kept"] == 4
    monet = manifest.loc[FILES[0][0]]
    assert (monet["style"], monet["artist"], monet["split"]) == ("Impressionism", "Claude Monet", "test")
    assert (manifest.drop(FILES[0][0])["split"] == "train").all()


def write_artgan(root: Path) -> None:
    write_tree(root)
    styles = sorted({style for _, style, _ in FILES})
    genres = sorted({genre for _, _, genre in FILES})
    (root / "style_class.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(styles)))
    (root / "genre_class.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(genres)))
    train, val = FILES[:3], FILES[3:]
    (root / "style_train.csv").write_text("".join(f"{rel},{styles.index(style)}\n" for rel, style, _ in train))
    (root / "style_val.csv").write_text("".join(f"{rel},{styles.index(style)}\n" for rel, style, _ in val))
    (root / "genre_train.csv").write_text("".join(f"{rel},{genres.index(genre)}\n" for rel, _, genre in FILES[:2]))
    (root / "genre_val.csv").write_text(f"Baroque/missing-file.jpg,0\n{FILES[3][0]},{genres.index(FILES[3][2])}\n")


def test_artgan_labels_from_its_csvs_and_official_split(tmp_path):
    root = tmp_path / "artgan"
    write_artgan(root)
    assert detect_format(root) == "artgan"
    manifest, metrics = ingest_source(root, tmp_path, split="from_source")
    assert metrics["kept"] == 4 and metrics["skipped_by_reason"] == {"missing_file": 1}
    for relative, style, genre in FILES:
        assert manifest.loc[relative, "style"] == style
    assert manifest.loc[FILES[0][0], "genre"] == "landscape"
    assert manifest.loc[FILES[2][0], "genre"] == "unknown"  # not in any genre CSV
    assert manifest.loc[FILES[3][0], "split"] == "test"  # ArtGAN's val is the held-out set
    assert (manifest.drop(FILES[3][0])["split"] == "train").all()


HF_FEATURES = {
    "image": {"_type": "Image"},
    "artist": {"names": ["Unknown Artist", "claude-monet", "pablo-picasso"], "_type": "ClassLabel"},
    "genre": {"names": ["landscape", "portrait", "still_life"], "_type": "ClassLabel"},
    "style": {"names": ["Baroque", "Cubism", "Impressionism"], "_type": "ClassLabel"},
}


def write_hf_shard(path: Path, seeds: list[int], with_metadata: bool) -> None:
    images = []
    for seed in seeds:
        buffer = io.BytesIO()
        random_painting(seed).save(buffer, format="JPEG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    images.append({"bytes": b"garbage", "path": "broken.jpg"})
    table = pa.table({
        "image": images,
        "artist": [1, 2] * (len(seeds) // 2) + [0] * (len(seeds) % 2) + [0],
        "genre": [0] * len(images),
        "style": [2, 1] * (len(seeds) // 2) + [0] * (len(seeds) % 2) + [0],
    })
    if with_metadata:
        metadata = {b"huggingface": json.dumps({"info": {"features": HF_FEATURES}}).encode()}
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, row_group_size=2)


def readme_card() -> str:
    features = [{"name": "image", "dtype": "image"}] + [
        {"name": name, "dtype": {"class_label": {"names": {str(i): label for i, label in enumerate(spec["names"])}}}}
        for name, spec in HF_FEATURES.items() if "names" in spec
    ]
    return "---\n" + yaml.safe_dump({"dataset_info": {"features": features}}) + "---\n# WikiArt\n"


@pytest.mark.parametrize("names_from", ["schema", "dataset_info.json", "README.md"])
def test_hf_parquet_shards_with_class_names(tmp_path, names_from):
    root = tmp_path / "hf"
    (root / "data").mkdir(parents=True)
    in_schema = names_from == "schema"
    write_hf_shard(root / "data" / "train-00000-of-00002.parquet", [1, 2, 3, 4], with_metadata=in_schema)
    write_hf_shard(root / "data" / "train-00001-of-00002.parquet", [5, 6], with_metadata=in_schema)
    if names_from == "dataset_info.json":
        (root / "dataset_info.json").write_text(json.dumps({"features": HF_FEATURES}))
    if names_from == "README.md":
        (root / "README.md").write_text(readme_card())
    assert detect_format(root) == "hf_parquet"
    manifest, metrics = ingest_source(root, tmp_path)
    assert metrics["kept"] == 6
    assert metrics["skipped_by_reason"] == {"not_an_image": 2}
    first = manifest.loc["train-00000-of-00002.parquet#0"]
    assert (first["artist"], first["style"], first["genre"]) == ("claude-monet", "Impressionism", "landscape")


def sources(labels: list[str]) -> list[SourceImage]:
    return [SourceImage(relative=f"{label}/{i}.jpg", style=label) for i, label in enumerate(labels)]


def test_subset_is_deterministic_stratified_and_capped():
    items = sources(["A"] * 600 + ["B"] * 300 + ["C"] * 100) + [SourceProblem("x.jpg", "missing_file")]
    chosen = select_subset(items, max_images=100, per_class=None, stratify_by="style", seed=1)
    assert chosen == select_subset(list(reversed(items)), max_images=100, per_class=None, stratify_by="style", seed=1)
    counts = pd.Series([name.split("/")[0] for name in chosen]).value_counts()
    assert (
        len(chosen) == 100 and abs(counts["A"] - 60) <= 1 and abs(counts["B"] - 30) <= 1 and abs(counts["C"] - 10) <= 1
    )
    capped = select_subset(items, max_images=None, per_class=50, stratify_by="style", seed=1)
    assert pd.Series([name.split("/")[0] for name in capped]).value_counts().to_dict() == {"A": 50, "B": 50, "C": 50}
    assert chosen != select_subset(items, max_images=100, per_class=None, stratify_by="style", seed=2)


# --- hostile metadata: a bad row costs that row (and the file it names), a bad file fails at once ----

def write_folder_with_metadata(root: Path, rows: list[bytes]) -> None:
    write_tree(root)
    header = b"filename,artist,title,year,style,genre\n"
    (root / "metadata.csv").write_bytes(header + b"".join(rows))


def good_row(relative: str, artist: str = "Someone") -> bytes:
    return f"{relative},{artist},A Title,1900,{relative.split('/')[0]},portrait\n".encode()


def outcomes(root: Path, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    ingest(read_source(root), tmp_path / "out", IngestSettings(val_fraction=0.0))
    return read_manifest(tmp_path / "out").set_index("source_path"), pd.read_csv(
        tmp_path / "out/skipped.csv"
    ).set_index("source_path")


def test_kaggle_genre_cell_that_is_no_list_of_names_skips_that_row(tmp_path):
    root = tmp_path / "kaggle"
    write_tree(root)
    rows = [
        {"filename": rel, "artist": "A", "genre": f"['{style}']", "description": "x", "subset": "train"}
        for rel, style, _ in FILES
    ]
    rows[1]["genre"] = "{[1]: 2}"  # ast.literal_eval raises TypeError (an unhashable key)
    rows[2]["genre"] = "Cubism"  # a bare name is still a name
    pd.DataFrame(rows).to_csv(root / "classes.csv", index=False)
    manifest, skipped = outcomes(root, tmp_path)
    assert skipped.loc[FILES[1][0], "reason"] == "bad_metadata_row"
    assert "classes.csv line 3" in skipped.loc[FILES[1][0], "detail"]
    assert set(manifest.index) == {FILES[0][0], FILES[2][0], FILES[3][0]}
    assert manifest.loc[FILES[2][0], "style"] == "Cubism"


def test_a_non_utf8_byte_costs_only_its_own_row(tmp_path):
    root = tmp_path / "src"
    write_folder_with_metadata(root, [
        good_row(FILES[0][0]),
        FILES[1][0].encode() + b",Edgar D\xe9gas,Dancers,,Impressionism,genre_painting\n",  # Latin-1, not UTF-8
        good_row(FILES[2][0]),
        good_row(FILES[3][0]),
    ])
    manifest, skipped = outcomes(root, tmp_path)
    assert skipped.loc[FILES[1][0], "reason"] == "bad_metadata_row"
    assert "line 3" in skipped.loc[FILES[1][0], "detail"] and "\\xe9" in skipped.loc[FILES[1][0], "detail"]
    assert set(manifest.index) == {FILES[0][0], FILES[2][0], FILES[3][0]}
    assert (manifest["artist"] == "Someone").all()  # the other rows' labels are used


def test_a_field_over_the_csv_size_limit_costs_only_its_own_row(tmp_path):
    root = tmp_path / "src"
    huge_title = b"x" * 200_000  # csv's default field_size_limit is 131072
    write_folder_with_metadata(root, [
        good_row(FILES[0][0]),
        FILES[1][0].encode() + b",Edgar Degas," + huge_title + b",,Impressionism,genre_painting\n",
        good_row(FILES[2][0]),
        good_row(FILES[3][0]),
    ])
    manifest, skipped = outcomes(root, tmp_path)
    assert skipped.loc["metadata.csv:3", "reason"] == "bad_metadata_row"
    assert "field larger than field limit" in skipped.loc["metadata.csv:3", "detail"]
    # The row is lost, not the image: its labels come from its path, like any file without a row.
    assert manifest.loc[FILES[1][0], "artist"] == "Edgar Degas" and manifest.loc[FILES[1][0], "title"] == "Dancers"
    assert (manifest.drop(FILES[1][0])["artist"] == "Someone").all()


def test_a_nul_in_a_metadata_file_name_is_a_problem_of_that_row(tmp_path):
    root = tmp_path / "src"
    write_folder_with_metadata(
        root, [good_row(relative) for relative, _, _ in FILES] + [b"Cubism/evil\x00name.jpg,A,B,,Cubism,x\n"]
    )
    manifest, skipped = outcomes(root, tmp_path)
    assert len(manifest) == 4
    assert skipped["reason"].tolist() == ["unreadable_path"]


def test_a_metadata_file_without_its_filename_column_fails_before_any_image_is_read(tmp_path):
    root = tmp_path / "src"
    write_tree(root)
    (root / "metadata.csv").write_text("file,artist\nImpressionism/edgar-degas_dancers.jpg,Degas\n")
    with pytest.raises(SourceError, match=r"metadata\.csv line 1: no 'filename' column"):
        read_source(root)  # raised by the call, not later while iterating


def jpeg_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    random_painting(seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_hf_shard_with_plain_binary_images_and_integer_class_names(tmp_path):
    root = tmp_path / "hf"
    root.mkdir()
    features = {"image": {"_type": "Image"}, "artist": {"names": [1850, 1900], "_type": "ClassLabel"}}
    table = pa.table({"image": pa.array([jpeg_bytes(1), jpeg_bytes(2)], pa.binary()), "artist": [0, 1]})
    table = table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    pq.write_table(table, root / "train.parquet")
    manifest, metrics = ingest_source(root, tmp_path)
    assert metrics["kept"] == 2
    assert sorted(manifest["artist"]) == ["1850", "1900"]


@pytest.mark.parametrize("problem, message", [
    ("bad_json", r"train-1\.parquet: its 'huggingface' schema metadata is not JSON \(.*line 1 column"),
    ("integer_image", r"train-1\.parquet: column 'image' is int64"),
    ("no_image", r"train-1\.parquet: no 'image' column"),
    ("not_parquet", r"train-1\.parquet: not a readable Parquet file"),
])
def test_an_unusable_hf_shard_fails_before_any_image_is_read(tmp_path, problem, message):
    root = tmp_path / "hf"
    root.mkdir()
    write_hf_shard(root / "train-0.parquet", [1, 2], with_metadata=True)
    bad = root / "train-1.parquet"
    if problem == "bad_json":
        table = pa.table({"image": [{"bytes": jpeg_bytes(3), "path": None}], "artist": [0]})
        pq.write_table(table.replace_schema_metadata({b"huggingface": b'{"info": {"features": '}), bad)
    elif problem == "integer_image":
        pq.write_table(pa.table({"image": [1, 2]}), bad)
    elif problem == "no_image":
        pq.write_table(pa.table({"picture": [jpeg_bytes(3)]}), bad)
    else:
        bad.write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match=message):
        read_source(root)


def test_a_damaged_row_group_costs_only_its_rows(tmp_path):
    root = tmp_path / "hf"
    root.mkdir()
    shard = root / "train.parquet"
    write_hf_shard(shard, [1, 2, 3, 4, 5], with_metadata=True)  # row groups of 2 rows; the 6th row is garbage
    data = bytearray(shard.read_bytes())
    page = pq.ParquetFile(shard).metadata.row_group(1).column(0).data_page_offset
    data[page:page + 16] = b"\xff" * 16  # the page header of rows 2-3 no longer parses
    shard.write_bytes(bytes(data))
    manifest, metrics = ingest_source(root, tmp_path)
    assert sorted(manifest.index) == ["train.parquet#0", "train.parquet#1", "train.parquet#4"]
    assert metrics["skipped_by_reason"] == {"unreadable_rows": 1, "not_an_image": 1}


def test_an_unreadable_dataset_card_fails_before_any_image_is_read(tmp_path):
    root = tmp_path / "hf"
    root.mkdir()
    write_hf_shard(root / "train-0.parquet", [1, 2], with_metadata=False)
    (root / "dataset_info.json").write_text('{"features": {"style": ')
    with pytest.raises(SourceError, match=r"dataset_info\.json: not JSON \(.*line 1 column"):
        read_source(root)


def test_artgan_rows_that_are_not_utf8_or_lack_an_index_cost_their_file(tmp_path):
    root = tmp_path / "artgan"
    write_artgan(root)
    with open(root / "genre_train.csv", "ab") as handle:
        handle.write(FILES[2][0].encode() + b",\xff\n")  # a byte that is not UTF-8
        handle.write(b"Baroque/no-index.jpg,\n")
    manifest, skipped = outcomes(root, tmp_path)
    assert (
        skipped.loc[FILES[2][0], "reason"] == "bad_metadata_row"
        and "genre_train.csv line 3" in skipped.loc[FILES[2][0], "detail"]
    )
    assert skipped.loc["Baroque/no-index.jpg", "reason"] == "bad_metadata_row"
    assert set(manifest.index) == {FILES[0][0], FILES[1][0], FILES[3][0]}


def test_artgan_class_file_that_is_not_utf8_names_its_line(tmp_path):
    root = tmp_path / "artgan"
    write_artgan(root)
    (root / "genre_class.txt").write_bytes(b"0 landscape\n1 portr\xe4it\n")
    with pytest.raises(SourceError, match=r"genre_class\.txt line 2: not UTF-8"):
        read_source(root)


def test_file_names_that_are_not_utf8_are_kept_under_a_legible_name(tmp_path):
    root = tmp_path / "src"
    (root / "Cubism").mkdir(parents=True)
    random_painting(1).save(root / "Cubism" / "fine.png")
    name = os.fsdecode(b"Cubism/d\xe9j\xe0-vu.png")  # a Latin-1 file name on a UTF-8 system
    random_painting(2).save(root / name)
    manifest, skipped = outcomes(root, tmp_path)
    assert sorted(manifest.index) == ["Cubism/d\\xe9j\\xe0-vu.png", "Cubism/fine.png"]
    assert skipped.empty
