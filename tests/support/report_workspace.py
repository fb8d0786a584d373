"""A workspace as the report stage finds it after a whole run, in miniature: the tiny project's
images and manifests (two strengths per original), the repository's committed metrics of the
embedded default (real files, as the stages wrote them), a skipped image and the model's
thresholds; and helpers that read the HTML report the way a browser would."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from PIL import Image

from artsim.core import layout
from artsim.evaluate.verdict import ShippedThresholds, Thresholds
from tests.support.helpers import REPO_ROOT
from tests.support.tiny_project import build_tiny_project

STRENGTHS = (0.3, 0.6)


def build_report_workspace(root: Path) -> Path:
    build_tiny_project(root)
    _add_strength(root, STRENGTHS[1])
    shutil.copytree(REPO_ROOT / "metrics", root / "metrics")
    pd.DataFrame(
        [{"source_path": "Warm/broken.jpg", "reason": "corrupt_image", "detail": "OSError: truncated"}]
    ).to_csv(root / layout.INGESTED / "skipped.csv", index=False)
    thresholds = Thresholds({0.9: 0.51, 0.99: 0.55}, {0.9: 0.95, 0.99: 0.8}, positives=21, negatives=21)
    ShippedThresholds("ab" * 32, thresholds).save(root / layout.VERDICT)
    return root


def _add_strength(root: Path, strength: float) -> None:
    """A second variant of each original, blended further toward its donor."""
    generated = root / layout.GENERATED
    manifest = pd.read_parquet(generated / layout.MANIFEST)
    extra = []
    for row in manifest.to_dict("records"):
        original = Image.open(root / layout.INGESTED / f"images/{row['original_id']}.jpg")
        donor = Image.open(root / layout.INGESTED / f"images/{row['style_source_id']}.jpg")
        name = f"images/{row['id']}-{strength}.jpg"
        Image.blend(original, donor, strength).save(generated / name)
        extra.append({**row, "id": f"{row['id']}-{strength}", "path": name, "strength": strength})
    pd.concat([manifest, pd.DataFrame(extra)], ignore_index=True).to_parquet(generated / layout.MANIFEST)


def set_metadata(root: Path, original_id: str, **values: str) -> None:
    path = root / layout.INGESTED / layout.MANIFEST
    manifest = pd.read_parquet(path)
    for key, value in values.items():
        manifest.loc[manifest["id"] == original_id, key] = value
    manifest.to_parquet(path)


class Elements(HTMLParser):
    """Every start tag of a document with its attributes, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def named(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def outside_references(self) -> list[str]:
        """Every attribute that would make a browser fetch or navigate to something not in the file."""
        found = []
        for _, attrs in self.tags:
            for name in ("src", "href", "srcset", "data", "poster", "action"):
                value = attrs.get(name)
                if value is not None and not value.startswith(("data:", "#")):
                    found.append(f"{name}={value}")
        return found
