"""Describing many images: in parallel worker processes, streamed to Parquet, cached per image.

Memory does not grow with the number of images: entries go to the workers a bounded window
at a time (artsim.core.parallel.ordered_map, which also survives a worker killed by a decoder),
and finished rows go to the Parquet file in row groups. Only the skipped images (with their
reasons) are kept until the end. Each descriptor's vector is looked up in the
descriptor cache (artsim.describe.cache) by the image's sha256 first; an image is decoded
only when one of its descriptors is missing, and only the missing ones are computed.
"""
from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from artsim.core import layout
from artsim.core.images import ImageRejected, content_hash, load_rgb, resize_long_side
from artsim.core.parallel import ordered_map
from artsim.core.shards import read_locations
from artsim.describe.cache import DescriptorCache
from artsim.describe.registry import DESCRIPTORS, to_grey
from artsim.describe.table import Descriptors, ImageEntry, SkippedImage, descriptor_row, manifest_entries, skipped_table
from artsim.params import DESCRIPTOR_NAMES, DescribeParams

log = logging.getLogger(__name__)

MIN_IMAGES_PER_WORKER = 200
ROWS_PER_GROUP = 2048
SCHEMA = pa.schema([("id", pa.string()), ("role", pa.string()),
                    *((name, pa.list_(pa.float64())) for name in DESCRIPTOR_NAMES)])


@dataclass
class DescribeReport:
    """What a run did: images described, vectors computed per descriptor (the rest came from the cache), entries
    healed."""

    described: int = 0
    computed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DESCRIPTOR_NAMES, 0))
    healed: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    entry: ImageEntry
    result: Descriptors | SkippedImage
    computed: tuple[str, ...] = ()
    healed: int = 0


# --- one image ---------------------------------------------------------------------------

def _compute(name: str, rgb: np.ndarray, grey: np.ndarray, params: DescribeParams) -> np.ndarray:
    # One descriptor of the registry (artsim.describe.registry); its vector functions are looked up at
    # call time, so that tests can count the calls of each.
    return DESCRIPTORS[name].vector(rgb, grey, params)


@functools.lru_cache(maxsize=4)
def _open_cache(root: Path | None, params: DescribeParams) -> DescriptorCache | None:
    return None if root is None else DescriptorCache(root, params)


def describe_entry(entry: ImageEntry, params: DescribeParams, cache_root: Path | None) -> Outcome:
    """Descriptors of one image, from the cache where it has them; a rejected image becomes SkippedImage."""
    # The rejection travels back as plain data: exceptions with custom fields do not pickle faithfully.
    try:
        data = entry.path.read_bytes()
    except FileNotFoundError:
        return Outcome(entry, SkippedImage(entry.id, str(entry.path), "missing_file", str(entry.path)))
    except OSError as exc:
        return Outcome(entry, SkippedImage(entry.id, str(entry.path), "unreadable", str(exc)))
    except ImageRejected as exc:  # a shard shorter than its manifest says, or not a file
        return Outcome(entry, SkippedImage(entry.id, str(entry.path), exc.reason, exc.detail))
    cache = _open_cache(cache_root, params)
    image_sha256 = content_hash(data)
    healed_before = cache.healed if cache else 0
    vectors = cache.load(image_sha256) if cache else {}
    missing = tuple(name for name in DESCRIPTOR_NAMES if name not in vectors)
    if missing:
        try:
            rgb = np.asarray(resize_long_side(load_rgb(data), params.size), dtype=np.uint8)
        except ImageRejected as exc:
            return Outcome(entry, SkippedImage(entry.id, str(entry.path), exc.reason, exc.detail))
        grey = to_grey(rgb)
        computed = {name: _compute(name, rgb, grey, params) for name in missing}
        vectors.update(computed)
        if cache:
            cache.save(image_sha256, computed)
    healed = (cache.healed - healed_before) if cache else 0
    return Outcome(entry, Descriptors(**{name: vectors[name] for name in DESCRIPTOR_NAMES}), missing, healed)


def _worker_crashed(entry: ImageEntry) -> Outcome:
    # The decoder killed its process (a crafted file can segfault a C library): only this image is lost.
    return Outcome(entry, SkippedImage(entry.id, str(entry.path), "worker_crashed", "its describing process died"))


def _one_thread() -> None:
    # Parallelism comes from the worker processes; OpenCV threads on top would oversubscribe.
    cv2.setNumThreads(1)


def outcomes(
    entries: Iterable[ImageEntry], params: DescribeParams, cache_root: Path | None, workers: int
) -> Iterator[Outcome]:
    """describe_entry of each entry, in order, over `workers` processes with a bounded number in flight."""
    work = functools.partial(describe_entry, params=params, cache_root=cache_root)
    # spawn, not fork: forking a process that already started OpenCV's threads can deadlock.
    return ordered_map(work, entries, workers, on_crash=_worker_crashed,
                       mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)


class DescriptorWriter:
    """Rows of descriptors.parquet, written in row groups as they come."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, SCHEMA)
        self._rows: list[dict] = []

    def add(self, entry: ImageEntry, desc: Descriptors) -> None:
        self._rows.append(descriptor_row(entry, desc))
        if len(self._rows) >= ROWS_PER_GROUP:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=SCHEMA))
            self._rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def describe_to_parquet(entries: Iterable[ImageEntry], params: DescribeParams, out_dir: Path,
                        cache_root: Path | None = None, total: int | None = None, workers: int = 1) -> DescribeReport:
    """Describe images into `out_dir`/descriptors.parquet (input order) and skipped.csv.

    An image that cannot be decoded is recorded in skipped.csv with its reason and the stream
    continues. The result does not depend on `workers` nor on what the cache held.
    """
    if total is not None:
        # Starting a worker costs about a second: not worth it for a few hundred images each.
        workers = min(workers, max(1, total // MIN_IMAGES_PER_WORKER))
    report = DescribeReport()
    writer = DescriptorWriter(out_dir / layout.DESCRIPTORS_TABLE.name)
    try:
        for outcome in tqdm(outcomes(entries, params, cache_root, workers), total=total, desc="describe", unit="img",
                            mininterval=2.0):
            _record(outcome, writer, report)
    finally:
        writer.close()
    skipped_table(report.skipped).to_csv(out_dir / "skipped.csv", index=False)
    log.info("describe: %d images, computed %s (the rest from the cache), %d damaged cache entries recomputed",
             report.described, report.computed, report.healed)
    return report


def _record(outcome: Outcome, writer: DescriptorWriter, report: DescribeReport) -> None:
    report.healed += outcome.healed
    for name in outcome.computed:
        report.computed[name] += 1
    if isinstance(outcome.result, SkippedImage):
        entry, skip = outcome.entry, outcome.result
        log.warning("skipping %s (%s): %s %s", entry.id, entry.path, skip.reason, skip.detail)
        report.skipped.append(skip)
        return
    writer.add(outcome.entry, outcome.result)
    report.described += 1


def describe_manifests(ingested_dir: Path, generated_dir: Path, params: DescribeParams, out_dir: Path,
                       cache_root: Path | None = None, workers: int = 1) -> DescribeReport:
    """Describe every original (data/ingested) and every generated variant (data/generated)."""
    originals = read_locations(ingested_dir / layout.MANIFEST)
    generated = read_locations(generated_dir / layout.MANIFEST)
    entries = itertools.chain(
        manifest_entries(originals, ingested_dir, "original"),
        manifest_entries(generated, generated_dir, "generated"),
    )
    return describe_to_parquet(entries, params, out_dir, cache_root, total=len(originals) + len(generated),
                               workers=workers)
