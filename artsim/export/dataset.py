"""`artsim export dataset`: the workspace's originals, variants and pairs as a Hugging Face dataset.

    OUT/README.md                                   the dataset card (YAML header: configs, features, splits)
    OUT/originals/{train,validation,test}-NNNNN-of-NNNNN.parquet   id, image, labels, licence
    OUT/variants/...                                id, image, original_id, strength, backend, model, ...
    OUT/pairs/...                                   original_id, generated_id, positive, the scores

The export is built in a hidden folder beside OUT and renamed into place when complete, so a
crash leaves no half dataset under OUT. A row whose image cannot be read is left out and
reported (the card lists the reasons), never the end of the export.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import artsim.export.tables as tables
from artsim.core.images import write_atomically
from artsim.export.card import CARD, dataset_card
from artsim.export.exported import Exported, ExportReport
from artsim.export.provenance import read_provenance, source_licences
from artsim.export.tables import SPLIT, SPLITS, Skipped, Table
from artsim.export.targets import check_dataset_target
from artsim.export.writer import ShardLimits, write_split

log = logging.getLogger(__name__)


def export_dataset(workspace: Path, out: Path, *, force: bool = False,
                   limits: ShardLimits = ShardLimits()) -> ExportReport:
    """Write the export of `workspace` to `out` (a new folder, or with `force` an earlier export)."""
    workspace, out = Path(workspace), Path(out)
    check_dataset_target(workspace, out, force)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # what a crashed export left
    staging.mkdir(parents=True)
    try:
        report = _export_into(workspace, staging, limits)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.folder = out
    return report


def _export_into(workspace: Path, folder: Path, limits: ShardLimits) -> ExportReport:
    provenance = read_provenance(workspace)
    report = ExportReport(folder, provenance)
    licences = source_licences(workspace, provenance.param("ingest.source"))
    # Every table is read (and a damaged one refused) before any image is written.
    originals, variants = tables.originals(workspace, licences), tables.variants(workspace)
    pairs = tables.pairs(workspace)
    splits = _write(folder, originals, limits, report).rows.set_index("id")[SPLIT]
    variant_ids = set(_write(folder, tables.in_original_splits(variants, splits), limits, report).rows["id"])
    _write(folder, tables.joined(pairs, set(splits.index), variant_ids), limits, report)
    card = dataset_card(report)
    write_atomically(folder / CARD, lambda handle: handle.write(card.encode("utf-8")), durable=False)
    return report


def _write(folder: Path, table: Table, limits: ShardLimits, report: ExportReport) -> Exported:
    """One config, split by split; its rows afterwards are those written (images dropped)."""
    lost: list[Skipped] = []
    exported = Exported(table)
    for split in SPLITS:
        exported.splits[split] = write_split(folder / table.name, split, table.split(split), table.columns, limits,
                                             lost.append, table.name)
    if (folder / table.name).is_dir() and not any((folder / table.name).iterdir()):
        (folder / table.name).rmdir()  # a config without rows has no folder
    lost_ids = {skipped.id for skipped in lost}
    table.rows = table.rows[~table.rows[table.columns[0].name].isin(lost_ids)].drop(columns=[tables.IMAGE])
    report.skipped += table.skipped + lost
    _log_left_out(table.skipped + lost)
    report.configs[table.name] = exported
    return exported


def _log_left_out(skipped: list[Skipped]) -> None:
    """One line per reason (with its first row): a damaged shard can cost thousands of rows."""
    by_reason: dict[tuple[str, str], list[Skipped]] = {}
    for row in skipped:
        by_reason.setdefault((row.table, row.reason), []).append(row)
    for (table, reason), rows in by_reason.items():
        first = rows[0]
        log.warning("export: %d %s left out (%s), e.g. %s %s", len(rows), table, reason, first.id, first.detail)


def _replace(staging: Path, out: Path) -> None:
    """`staging` becomes `out`; an earlier export there (check_dataset_target allowed it) goes."""
    if out.exists():
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)
