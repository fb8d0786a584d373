"""What a source reader yields, and the labels WikiArt encodes in its paths.

Each item is a `SourceImage` (where to get the bytes, the labels, the split the source
prescribes, if any) or a `SourceProblem` (a metadata row or file that cannot be used, with a
countable reason). Missing label values are never a reason to skip: an empty metadata value
falls back to what the file's path says, and to `unknown` when the path says nothing either.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LABEL_FIELDS = ("artist", "title", "year", "style", "genre")
UNKNOWN = "unknown"
# A metadata row that cannot be used; the file it names is skipped with it.
BAD_ROW = "bad_metadata_row"
_YEAR_SUFFIX = re.compile(r"-(\d{3,4})$")


@dataclass(frozen=True)
class SourceImage:
    """One image of the source: a file, or bytes embedded in the source (Parquet)."""

    relative: str
    path: Path | None = None
    data: bytes | None = None
    artist: str = UNKNOWN
    title: str = UNKNOWN
    year: str = ""
    style: str = UNKNOWN
    genre: str = UNKNOWN
    source_split: str | None = None


@dataclass(frozen=True)
class SourceProblem:
    relative: str
    reason: str
    detail: str = ""


SourceItem = SourceImage | SourceProblem


def labels_from_path(relative: str) -> dict[str, str]:
    """Labels WikiArt encodes in its layout: `<Style>/<artist-slug>_<title-slug>[-<year>]`."""
    parts = Path(relative).parts
    style = parts[0] if len(parts) > 1 else UNKNOWN
    artist_slug, _, title_slug = Path(relative).stem.partition("_")
    year = ""
    match = _YEAR_SUFFIX.search(title_slug)
    if match:
        year, title_slug = match.group(1), title_slug[: match.start()]
    return {
        "artist": humanise(artist_slug) or UNKNOWN,
        "title": humanise(title_slug) or UNKNOWN,
        "year": year,
        "style": style,
        "genre": UNKNOWN,
    }


def humanise(slug: str) -> str:
    return " ".join(word.capitalize() for word in slug.replace("_", "-").split("-") if word)


def merge_labels(relative: str, given: dict[str, str]) -> dict[str, str]:
    """Metadata values where present, the path's where not."""
    from_path = labels_from_path(relative)
    return {key: (given.get(key) or "").strip() or from_path[key] for key in LABEL_FIELDS}
