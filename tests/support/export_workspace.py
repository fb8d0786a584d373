"""A miniature artsim workspace for the export tests, laid out as ingest and generate lay theirs:
images packed into tar shards by core.shards, manifests locating them, pairs, a dvc.lock and the
ingest source's metadata.csv with licences."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from artsim.core import layout
from artsim.core.shards import SHARD_FOLDER, ShardMember, ShardWriter, bucket
from artsim.export import export_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
# (id, split) of the originals; o5 gets no variant (its generation failed).
ORIGINALS = [("o0", "train"), ("o1", "train"), ("o2", "train"), ("o3", "val"), ("o4", "test"), ("o5", "test")]
STRENGTHS = (0.25, 0.75)
ORPHAN = "v-orphan"  # a variant whose original is not among the originals
LICENCE = "public domain"


def _jpeg(seed: int) -> bytes:
    """A 24x20 colour field of its own: every image differs, so a mix-up of bytes shows."""
    small = np.random.default_rng(seed).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((24, 20), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _pack(folder: Path, rows: list[dict], images: list[bytes], group=bucket) -> None:
    """rows + images as a stage writes them: shards under folder/shards, manifest.parquet locating each."""
    with ShardWriter(folder / SHARD_FOLDER) as shards:
        for row, data in zip(rows, images):
            row["path"] = f"images/{row['id']}.jpg"
            row["shard"], row["offset"], row["length"] = shards.add(row["path"], data, group(row["id"]))
    columns = list(rows[0]) if rows else ["id", "path", "split", "shard", "offset", "length"]
    pd.DataFrame(rows, columns=columns).to_parquet(folder / layout.MANIFEST)


def build_workspace(root: Path, *, originals=ORIGINALS, with_variants: bool = True) -> Path:
    (root / layout.INGESTED).mkdir(parents=True)
    rows = [{"id": i, "hash": f"h-{i}", "source_path": f"Style/{i}.jpg", "artist": "A", "title": f"T {i}",
             "year": "1900", "style": "Style", "genre": "portrait", "split": split, "width": 24, "height": 20}
            for i, split in originals]
    _pack(root / layout.INGESTED, rows, [_jpeg(n) for n in range(len(rows))])
    (root / "src").mkdir()
    (root / "src/metadata.csv").write_text("filename,license,source\n" + "".join(
        f"{row['source_path']},{LICENCE},a museum\n" for row in rows))
    generate = {"generate.backend": "sdxl", "generate.strengths": list(STRENGTHS)}
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "ingest": {"params": {"params.yaml": {"ingest.source": "src"}}},
        "generate": {"params": {"params.yaml": generate}}}}))
    if with_variants:
        _variants_and_pairs(root, [i for i, _ in originals if i != "o5"])
    return root


def _variants_and_pairs(root: Path, sources: list[str]) -> None:
    """Variants of `sources` at each strength, one orphan (its original "gone" is in no manifest),
    and a positive pair per variant (the orphan's included), each in its original's split."""
    (root / layout.GENERATED).mkdir(parents=True)
    made = [(f"v-{o}-{s}", o, s) for o in sources for s in STRENGTHS] + [(ORPHAN, "gone", STRENGTHS[0])]
    rows = [{"id": key, "original_id": o, "strength": s, "style_source_id": "", "backend": "sdxl",
             "model": "org/model@abc123", "seed": 7, "width": 24, "height": 20, "prompt": f"a painting {o}"}
            for key, o, s in made]
    _pack(root / layout.GENERATED, rows, [_jpeg(100 + n) for n in range(len(rows))], group=lambda key: "s")
    splits = dict(ORIGINALS)
    pairs = [{"pair_id": f"p-{key}", "original_id": o, "generated_id": key, "positive": True, "strength": s,
              "split": splits.get(o, "train"), "color": 0.5, "score": 0.75} for key, o, s in made]
    (root / layout.PAIRS).mkdir(parents=True)
    pd.DataFrame(pairs).to_parquet(root / layout.PAIRS_TABLE)


def built_and_exported(root: Path) -> tuple[Path, Path]:
    """The miniature workspace under `root`/ws and its export in `root`/out."""
    workspace = build_workspace(root / "ws")
    export_dataset(workspace, root / "out")
    return workspace, root / "out"


def read_card(out: Path) -> tuple[dict, str]:
    """The card's YAML header (parsed) and its body."""
    _, header, body = (out / "README.md").read_text(encoding="utf-8").split("---\n", 2)
    return yaml.safe_load(header), body


def stored_images(workspace: Path, stage: Path) -> dict[str, bytes]:
    """id -> the bytes the stage stored for it."""
    manifest = pd.read_parquet(workspace / stage / layout.MANIFEST)
    return {row.id: ShardMember(workspace / stage / row.shard, row.offset, row.length, row.path).read_bytes()
            for row in manifest.itertuples()}
