"""`artsim compare --pairs pairs.csv`: every pair of a CSV (columns a, b) scored in one process, in batches.

The output is a CSV: a header, then one row per input pair in input order (model score, descriptor
score, each descriptor similarity, the model score's verdict); a pair with an unusable image keeps its row,
with the reason in `error` and the scores empty, and the command's status is 2 (the columns:
artsim.app.render.pairs_header). A relative path is read from the CSV's folder. Each distinct image is decoded
once, in worker processes (one per core, one thread each) that also compute its descriptors and embed it with the
trunk, a batch at a time.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
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
class Embedded:
    """One distinct image of the CSV, decoded once (in a worker): its descriptors and its embedding."""

    descriptors: Descriptors
    embedding: torch.Tensor


class _DistinctImages(Dataset):
    """The CSV's distinct names, in first-use order, in batches; each batch decoded, described and embedded
    where it is read (a DataLoader worker, one thread): what crosses back is descriptors and embeddings, never an
    image, and the trunk of each worker runs without waiting on another's."""

    def __init__(self, names: list[str], base: Path, scorer: Scorer, batch_size: int) -> None:
        self.names, self.base, self.scorer, self.batch_size = names, base, scorer, batch_size

    def __len__(self) -> int:
        return -(-len(self.names) // self.batch_size)

    def __getitem__(self, batch: int) -> list[Embedded | str]:
        start = batch * self.batch_size
        prepared = [self._prepared(name) for name in self.names[start:start + self.batch_size]]
        usable = [item for item in prepared if not isinstance(item, str)]
        embeddings = iter(self.scorer.embed_resized([resized for _, resized in usable]) if usable else ())
        return [item if isinstance(item, str) else Embedded(item[0], next(embeddings)) for item in prepared]

    def _prepared(self, name: str) -> tuple[Descriptors, torch.Tensor] | str:
        """Its descriptors and its model-sized image (Scorer.resize), or why it is unusable; the decode is
        dropped here, so a batch holds model-sized images only."""
        if not name:
            return "empty path"
        try:
            image = open_image(self.base / name).image
        except UnusableImage as exc:
            return str(exc)
        return self.scorer.descriptor.describe_image(image), self.scorer.resize(image)


def compare_pairs(scorer: Scorer, pairs: list[tuple[str, str]], batch_size: int = PAIR_BATCH,
                  base: Path = Path("."), workers: int | None = None) -> Iterator[list[object]]:
    """One CSV row per pair, in input order, the paths as given; a relative path names a file under `base`
    (the CSV's folder), an absolute one itself.

    Each distinct path is decoded once however many rows name it: `workers` processes (default: one per core)
    each decode, describe and embed a batch of at most `batch_size` images (the batches as even as the workers
    allow), and a row is written as soon as both its images are embedded; an image is dropped after the last row
    that names it (memory follows how far apart a name's rows are, not the CSV's length)."""
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    last_row = {name: row for row, pair in enumerate(pairs) for name in pair}
    workers = _worker_count(workers, len(names))
    per_batch = _even_batch(len(names), batch_size, workers)
    loader = DataLoader(_DistinctImages(names, base, scorer, per_batch), batch_size=None, collate_fn=list,
                        num_workers=workers)
    ready: dict[str, Embedded | str] = {}
    done = 0
    with tqdm(total=len(pairs), desc="compare pairs", unit="pair", disable=None) as progress:
        for start, batch in zip(range(0, len(names), per_batch), _batches(loader)):
            ready.update(zip(names[start:start + per_batch], batch))
            until = done
            while until < len(pairs) and all(name in ready for name in pairs[until]):
                until += 1
            yield from _rows(scorer, pairs[done:until], ready)
            for name in {name for pair in pairs[done:until] for name in pair if last_row[name] < until}:
                del ready[name]
            progress.update(until - done)
            done = until


def _batches(loader: DataLoader) -> Iterator[list[Embedded | str]]:
    """The loader's batches, its workers started with one thread each: the workers are the parallelism, one per
    core, and threads inside them would oversubscribe the cores (a team whose thread is preempted stalls at its
    next barrier). The DataLoader gives each worker one torch thread; OpenCV's count is inherited, so the workers
    are forked while it is 1 (reconfiguring in a forked child the pool its parent started can hang: the pool's
    threads are not there to answer)."""
    if loader.num_workers == 0:
        return iter(loader)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)
    finally:
        cv2.setNumThreads(threads)


def _worker_count(workers: int | None, images: int) -> int:
    """`workers`, else one per core this process may run on once there is more than a batch (starting
    processes would cost more)."""
    if workers is not None:
        return workers
    return 0 if images <= PAIR_BATCH else _usable_cores()


def _usable_cores() -> int:
    # The cores this process may run on (taskset, a container's cpuset), not the machine's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _even_batch(images: int, batch_size: int, workers: int) -> int:
    """The largest batch up to `batch_size` that gives every worker the same number of batches: no worker is
    left idle while another embeds the last batch alone."""
    processes = max(workers, 1)
    rounds = max(1, -(-images // (batch_size * processes)))
    return max(1, -(-images // (rounds * processes)))


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
