"""`artsim compare --pairs pairs.csv`: every pair of a CSV (columns a, b) scored in one process, in batches.

The output is a CSV: a header, then one row per input pair in input order (model score, descriptor
score, each descriptor similarity, the model score's verdict); a pair with an unusable image keeps its row,
with the reason in `error` and the scores empty, and the command's status is 2 (the columns:
artsim.app.render.pairs_header). A relative path is read from the CSV's folder. Each batch decodes each distinct
image once and embeds them in one pass.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from artsim.app.api import LoadedImage, Scorer, UnusableImage, open_image
from artsim.core.errors import UserError

PAIR_BATCH = 32
MAX_FIELD = 4096  # a longer cell is not a path: refused with its row number


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The (a, b) rows of a CSV with columns a and b (others ignored); UserError names what is wrong."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"a", "b"} <= set(reader.fieldnames):
                raise UserError(f"--pairs {path}: needs a header with columns a and b, found {reader.fieldnames}")
            pairs = [(row["a"] or "", row["b"] or "") for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"--pairs {path}: cannot be read ({exc})") from None
    for line, (a, b) in enumerate(pairs, start=2):
        if len(a) > MAX_FIELD or len(b) > MAX_FIELD:
            raise UserError(f"--pairs {path}: line {line} has a cell over {MAX_FIELD} characters")
    return pairs


def compare_pairs(scorer: Scorer, pairs: list[tuple[str, str]], batch_size: int = PAIR_BATCH,
                  base: Path = Path(".")) -> Iterator[list[object]]:
    """One CSV row per pair, in input order, the paths as given; a relative path names a file under `base`
    (the CSV's folder), an absolute one itself."""
    for start in tqdm(range(0, len(pairs), batch_size), desc="compare pairs", unit="batch", disable=None):
        yield from _batch_rows(scorer, pairs[start:start + batch_size], base)


def _batch_rows(scorer: Scorer, pairs: list[tuple[str, str]], base: Path) -> Iterator[list[object]]:
    opened: dict[str, LoadedImage | str] = {}
    for name in dict.fromkeys(name for pair in pairs for name in pair):
        try:
            opened[name] = open_image(base / name) if name else "empty path"
        except UnusableImage as exc:
            opened[name] = str(exc)
    usable = [(a, b) for a, b in pairs if not isinstance(opened[a], str) and not isinstance(opened[b], str)]
    comparisons = dict(zip(usable, scorer.score_many([(opened[a], opened[b]) for a, b in usable])))
    names = list(scorer.descriptor.weights.as_dict())
    for a, b in pairs:
        if (a, b) in comparisons:
            found = comparisons[(a, b)]
            verdict = scorer.verdict(found.model_score).verdict
            parts = [found.similarities[n] for n in names]
            yield [a, b, found.model_score, found.descriptor_score, *parts, verdict, ""]
        else:
            why = next(opened[n] for n in (a, b) if isinstance(opened[n], str))
            yield [a, b, "", "", *([""] * len(names)), "", why]
