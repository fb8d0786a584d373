"""The WikiArt distribution formats, built small in code, and subset selection."""
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from artsim.ingest import IngestSettings, ingest, read_manifest, select_subset
from artsim.sources import SourceImage, SourceProblem, detect_format, read_source
from tests.helpers import random_painting

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
    return manifest.set_index("source_path"), report.as_metrics()


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
    assert len(chosen) == 100 and abs(counts["A"] - 60) <= 1 and abs(counts["B"] - 30) <= 1 and abs(counts["C"] - 10) <= 1
    capped = select_subset(items, max_images=None, per_class=50, stratify_by="style", seed=1)
    assert pd.Series([name.split("/")[0] for name in capped]).value_counts().to_dict() == {"A": 50, "B": 50, "C": 50}
    assert chosen != select_subset(items, max_images=100, per_class=None, stratify_by="style", seed=2)
