r"""Make docs/compare.png: `artsim compare --plot` on a held-out painting of the committed sample and its
generated variant, with a workspace after `dvc repro` (its model, its thresholds, its manifests).

    python scripts/compare_picture.py [--workspace .] [--painting vincent-van-gogh_the-harvest] [--strength 0.5] \
        [--out docs/compare.png]

The variant is taken from the workspace's generated images (written to a temporary file, as a user would
have it); the painting is the sample's own file, so the picture names it by its title.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from artsim.app.cli import main as artsim_main
from artsim.core import layout
from artsim.core.shards import manifest_images

REPO = Path(__file__).resolve().parents[1]


def variant_file(workspace: Path, original_id: str, strength: float, folder: Path) -> Path:
    """The workspace's variant of `original_id` at `strength`, copied to `folder`."""
    generated = pd.read_parquet(workspace / layout.GENERATED / layout.MANIFEST)
    rows = generated[(generated["original_id"] == original_id) & (generated["strength"] == strength)]
    if rows.empty:
        sys.exit(f"no variant of {original_id} at strength {strength} in {workspace / layout.GENERATED}")
    image = manifest_images(rows.head(1), workspace / layout.GENERATED)[0]
    path = folder / f"variant_strength-{strength:g}.jpg"
    path.write_bytes(image.read_bytes() if hasattr(image, "read_bytes") else Path(image).read_bytes())
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPO)
    parser.add_argument("--painting", default="vincent-van-gogh_the-harvest", help="part of the sample file's name")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "compare.png")
    args = parser.parse_args()
    ingested = pd.read_parquet(args.workspace / layout.INGESTED / layout.MANIFEST)
    row = ingested[ingested["source_path"].str.contains(args.painting, regex=False)].iloc[0]
    painting = REPO / "data" / "sample" / row["source_path"]
    with tempfile.TemporaryDirectory() as folder:
        variant = variant_file(args.workspace, row["id"], args.strength, Path(folder))
        return artsim_main(["compare", str(variant), str(painting), "--workspace", str(args.workspace),
                            "--plot", str(args.out)])


if __name__ == "__main__":
    raise SystemExit(main())
