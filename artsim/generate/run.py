"""Making the variants the store lacks: plan, find what is missing, shard, batch, retry, report.

Every rank plans the same variants; rank 0 alone looks in the store and tells the others
which keys are missing, so all ranks cut the same batches from the same list and take every
world_size-th batch. A batch's composition therefore does not depend on the number of ranks,
and one process or several make byte-identical variants. A batch that fails (e.g. out of
GPU memory) and a variant that comes out NaN are retried once alone; what fails again, and
any original that cannot be loaded, is reported per key while the rest of the run goes on.
"""
from __future__ import annotations

import logging
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from tqdm import tqdm

from artsim.core.distributed import ALONE, Ranks, broadcast_from_main, gather_to_all, rank_share
from artsim.core.images import ImageRejected
from artsim.core.shards import manifest_images
from artsim.generate.backends import backend_named, check_params
from artsim.generate.backends.base import AdoptedFile, Backend, Failure, InputError, ItemFailure, Output, Plan, Renderer
from artsim.generate.store import VariantStore
from artsim.generate.variants import Variant
from artsim.params import GenerateParams

__all__ = [
    "Failure",
    "GenerationResult",
    "InputError",
    "check_inputs",
    "generate",
    "make_batches",
    "plan",
    "run_batches",
]

log = logging.getLogger(__name__)

# Finished images waiting for the writer thread; beyond this the loop waits for the disk.
MAX_PENDING_WRITES = 64


@dataclass
class RankReport:
    computed: int = 0
    failures: list[Failure] = field(default_factory=list)

    def fail(self, variant: Variant, failure: ItemFailure) -> None:
        self.failures.append(
            Failure(variant.key, variant.original_id, variant.strength, failure.reason, failure.detail)
        )
        log.warning(
            "variant %s (original %s, strength %g) failed: %s %s",
            variant.key,
            variant.original_id,
            variant.strength,
            failure.reason,
            failure.detail,
        )


@dataclass
class GenerationResult:
    variants: list[Variant]  # the whole plan, stored or not
    reused: int  # found in the store when the run started
    computed: int  # made by this run, over all ranks
    failures: list[Failure]
    unmatched: list[str] = field(default_factory=list)  # import: originals without a variant file
    healed: int = 0  # stored variants found damaged, deleted and made again (counted in computed)

    @property
    def failed_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(f.reason for f in self.failures).items()))


def check_inputs(config: GenerateParams, originals: pd.DataFrame) -> Backend:
    """Params and data checked by generate and the backend, before any work: ParamsError or
    InputError naming the key. Returns the backend."""
    backend = check_params(config)
    backend.check_inputs(config, originals)
    return backend


def plan(config: GenerateParams, originals: pd.DataFrame, seed: int, renderer: Renderer | None) -> Plan:
    """The backend's plan, every variant once (by key)."""
    planned = backend_named(config.backend).plan(config, originals, seed, renderer)  # type: ignore[arg-type]
    planned.variants = list({v.key: v for v in planned.variants}.values())
    return planned


def make_batches(variants: Sequence[Variant], backend: Renderer, batch_size: int) -> list[list[Variant]]:
    """Batches of at most `batch_size` variants that the backend can make in one call, in a stable order."""
    ordered = sorted(variants, key=lambda v: (repr(backend.batch_group(v)), v.key))
    batches: list[list[Variant]] = []
    for _, group in groupby(ordered, key=lambda v: repr(backend.batch_group(v))):
        members = list(group)
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    return batches


def generate(
    originals: pd.DataFrame, originals_dir: Path, config: GenerateParams, seed: int, ranks: Ranks = ALONE
) -> GenerationResult:
    """Make every planned variant the store lacks; this rank does its share. Collective over ranks."""
    entry = check_inputs(config, originals)
    store = VariantStore(config.store)
    images = dict(zip(originals["id"].astype(str), manifest_images(originals, originals_dir)))
    backend = entry.open(config, images, ranks)
    planned = plan(config, originals, seed, backend)
    variants, unmatched, unplanned = planned.variants, planned.unmatched, planned.unplanned
    found: tuple[list[str], int] | None = None
    if ranks.is_main:
        store.remove_stale_temporaries()
        sound, healed = store.present(v.key for v in variants)  # damaged variants are deleted: made again
        found = ([v.key for v in variants if v.key not in sound], healed)
        log.info(
            "%d variants planned: %d in the store, %d to make on %d rank(s)",
            len(variants),
            len(sound),
            len(found[0]),
            ranks.world_size,
        )
    missing, healed = broadcast_from_main(found, ranks)
    wanted = set(missing)
    batches = make_batches([v for v in variants if v.key in wanted], backend, config.batch_size)
    report = run_batches(rank_share(batches, ranks), backend, store, config.jpeg_quality, ranks)
    reports = gather_to_all(report, ranks)
    return GenerationResult(
        variants=variants,
        reused=len(variants) - len(missing),
        computed=sum(r.computed for r in reports),
        failures=sorted(
            [*unplanned, *(f for r in reports for f in r.failures)], key=lambda f: (f.original_id, f.strength, f.key)
        ),
        unmatched=unmatched,
        healed=healed,
    )


def run_batches(
    batches: Sequence[Sequence[Variant]],
    backend: Renderer,
    store: VariantStore,
    jpeg_quality: int,
    ranks: Ranks = ALONE,
) -> RankReport:
    """Make `batches` into the store. Loading the next batch and writing finished images run
    in threads beside the backend, so a GPU does not wait for the disk."""
    report = RankReport()
    desc = f"generate [rank {ranks.rank}/{ranks.world_size}]" if ranks.launched else "generate"
    with (
        ThreadPoolExecutor(1, thread_name_prefix="generate-load") as loader,
        ThreadPoolExecutor(1, thread_name_prefix="generate-store") as writer,
        tqdm(
            total=sum(map(len, batches)), desc=desc, unit="img", position=ranks.rank if ranks.launched else None
        ) as bar,
    ):
        writes: deque[Future] = deque()
        upcoming = loader.submit(_load_batch, backend, batches[0]) if batches else None
        for index, batch in enumerate(batches):
            assert upcoming is not None
            loaded = upcoming.result()
            upcoming = loader.submit(_load_batch, backend, batches[index + 1]) if index + 1 < len(batches) else None
            ready = []
            for variant, inputs in loaded:
                if isinstance(inputs, ItemFailure):
                    report.fail(variant, inputs)
                else:
                    ready.append((variant, inputs))
            for variant, output in _render(backend, ready):
                if isinstance(output, ItemFailure):
                    report.fail(variant, output)
                else:
                    writes.append(writer.submit(_put, store, variant.key, output, jpeg_quality))
            while writes and (writes[0].done() or len(writes) > MAX_PENDING_WRITES):
                writes.popleft().result()  # re-raises a write error (e.g. a full disk): that one is fatal
                report.computed += 1
            bar.update(len(batch))
        while writes:
            writes.popleft().result()
            report.computed += 1
    return report


def _load_batch(backend: Renderer, batch: Sequence[Variant]) -> list[tuple[Variant, Any]]:
    return [(variant, _load(backend, variant)) for variant in batch]


def _load(backend: Renderer, variant: Variant) -> Any:
    for _ in range(2):  # the second try is for transient read errors (network filesystems)
        try:
            return backend.load(variant)
        except ImageRejected as exc:
            failure = ItemFailure(exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - one unreadable input must not stop the run
            failure = ItemFailure("load_error", f"{type(exc).__name__}: {exc}")
    return failure


def _render(backend: Renderer, items: Sequence[tuple[Variant, Any]]) -> list[tuple[Variant, Output]]:
    if not items:
        return []
    variants = [v for v, _ in items]
    try:
        outputs = backend.render(variants, [x for _, x in items])
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory: retry each variant alone
        log.warning("a batch of %d failed (%s: %s); retrying each variant alone", len(items), type(exc).__name__, exc)
        backend.recover()
        return [(variant, _render_alone(backend, variant, inputs)) for variant, inputs in items]
    results: list[tuple[Variant, Output]] = []
    for (variant, inputs), output in zip(items, outputs):
        if isinstance(output, ItemFailure):
            log.info("variant %s came out %s; retrying it alone", variant.key, output.reason)
            output = _render_alone(backend, variant, inputs)
        results.append((variant, output))
    return results


def _render_alone(backend: Renderer, variant: Variant, inputs: Any) -> Output:
    try:
        return backend.render([variant], [inputs])[0]
    except Exception as exc:  # noqa: BLE001
        backend.recover()
        return ItemFailure(_failure_reason(exc), f"{type(exc).__name__}: {exc}")


def _failure_reason(exc: BaseException) -> str:
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return "out_of_memory"
    return "backend_error"


def _put(store: VariantStore, key: str, output: Output, jpeg_quality: int) -> None:
    if isinstance(output, bytes):
        store.put_bytes(key, output)
    elif isinstance(output, AdoptedFile):
        store.adopt_file(key, output.path, output.data)
    else:
        store.put_image(key, output, jpeg_quality)  # type: ignore[arg-type]
