"""`artsim compare --pairs pairs.csv`: every pair of a CSV (columns a, b) scored in one process, in batches.

The output is a CSV: a header, then one row per input pair in input order (model score, descriptor
score, each descriptor similarity, the model score's verdict); a pair with an unusable image keeps its row,
with the reason in `error` and the scores empty, and the command's status is 2 (the columns:
artsim.app.render.pairs_header). A relative path is read from the CSV's folder. Each distinct image is decoded
once, in worker processes that also compute its descriptors, and the trunk embeds the images in batches.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from artsim.app.api import Scorer, UnusableImage, open_image
from artsim.core.errors import UserError
from artsim.describe.table import Descriptors

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


@dataclass
class Prepared:
    """One distinct image of the CSV, decoded once (in a worker): its descriptors and the model's input."""

    descriptors: Descriptors
    resized: torch.Tensor  # through Scorer.resize (uint8): the trunk's process only normalises it


@dataclass
class Embedded:
    descriptors: Descriptors
    embedding: torch.Tensor


class _DistinctImages(Dataset):
    """The CSV's distinct names, in first-use order, each decoded, described and resized where it is read
    (a DataLoader worker): what crosses back is small (descriptors, a model-sized image), never the decode."""

    def __init__(self, names: list[str], base: Path, scorer: Scorer) -> None:
        self.names, self.base = names, base
        self.describe, self.resize = scorer.descriptor.describe_image, scorer.resize

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, position: int) -> Prepared | str:
        name = self.names[position]
        if not name:
            return "empty path"
        try:
            image = open_image(self.base / name).image
        except UnusableImage as exc:
            return str(exc)
        return Prepared(self.describe(image), self.resize(image))


def compare_pairs(scorer: Scorer, pairs: list[tuple[str, str]], batch_size: int = PAIR_BATCH,
                  base: Path = Path("."), workers: int | None = None) -> Iterator[list[object]]:
    """One CSV row per pair, in input order, the paths as given; a relative path names a file under `base`
    (the CSV's folder), an absolute one itself.

    Each distinct path is decoded once however many rows name it: `workers` processes (default: one per core)
    decode, describe and resize, the trunk embeds `batch_size` images at a time, and a row is written as soon
    as both its images are embedded; an image is dropped after the last row that names it (memory follows how
    far apart a name's rows are, not the CSV's length)."""
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    last_row = {name: row for row, pair in enumerate(pairs) for name in pair}
    loader = DataLoader(_DistinctImages(names, base, scorer), batch_size=batch_size, collate_fn=list,
                        num_workers=_worker_count(workers, len(names)))
    ready: dict[str, Embedded | str] = {}
    done = 0
    with tqdm(total=len(pairs), desc="compare pairs", unit="pair", disable=None) as progress:
        for start, batch in zip(range(0, len(names), batch_size), loader):
            ready.update(_embedded(scorer, names[start:start + batch_size], batch))
            until = done
            while until < len(pairs) and all(name in ready for name in pairs[until]):
                until += 1
            yield from _rows(scorer, pairs[done:until], ready)
            for name in {name for pair in pairs[done:until] for name in pair if last_row[name] < until}:
                del ready[name]
            progress.update(until - done)
            done = until


def _worker_count(workers: int | None, images: int) -> int:
    """`workers`, else one per core once there is more than a batch (starting processes would cost more)."""
    if workers is not None:
        return workers
    return 0 if images <= PAIR_BATCH else os.cpu_count() or 1


def _embedded(scorer: Scorer, names: list[str], batch: list[Prepared | str]) -> dict[str, Embedded | str]:
    usable = [(name, item) for name, item in zip(names, batch) if isinstance(item, Prepared)]
    found: dict[str, Embedded | str] = {name: item for name, item in zip(names, batch) if isinstance(item, str)}
    if usable:
        embeddings = scorer.embed_resized([item.resized for _, item in usable])
        found.update({name: Embedded(item.descriptors, embedding)
                      for (name, item), embedding in zip(usable, embeddings)})
    return found


def _rows(scorer: Scorer, pairs: list[tuple[str, str]], ready: dict[str, Embedded | str]) -> Iterator[list[object]]:
    usable = [(a, b) for a, b in pairs if isinstance(ready[a], Embedded) and isinstance(ready[b], Embedded)]
    model_scores = dict(zip(usable, scorer.head_scores(
        torch.stack([ready[a].embedding for a, _ in usable]), torch.stack([ready[b].embedding for _, b in usable])
    ))) if usable else {}
    names = list(scorer.descriptor.weights.as_dict())
    for a, b in pairs:
        if (a, b) in model_scores:
            model_score = float(model_scores[(a, b)])
            sims = scorer.descriptor.similarities(ready[a].descriptors, ready[b].descriptors)
            verdict = scorer.verdict(model_score).verdict
            yield [a, b, model_score, scorer.descriptor.score(sims), *[sims[n] for n in names], verdict, ""]
        else:
            why = next(ready[n] for n in (a, b) if isinstance(ready[n], str))
            yield [a, b, "", "", *([""] * len(names)), "", why]
