"""The report's first sections: the dataset, the descriptor study and the two trainings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import artsim.report.figures as figures
import artsim.report.tables as tables
from artsim.core import layout
from artsim.ingest.run import SKIPPED
from artsim.report.blocks import Examples, Section
from artsim.report.examples import examples
from artsim.report.rows import Table, counts, frame_table, from_docs, key_values
from artsim.report.sources import Workspace, number

# Rows of a per-file table (skipped images) printed before the report says how many more there are.
FILE_ROWS = 50


def dataset(workspace: Workspace, example_count: int, thumbnail: int) -> Section:
    section = Section("dataset", "Dataset")
    ingest = workspace.json(layout.metrics_json("ingest"))
    section.table(key_values(ingest, "ingest: what was kept and skipped"))
    manifest = workspace.parquet(layout.INGESTED / layout.MANIFEST, ["id"], ["style", "genre", "split"])
    if manifest is not None:
        section.text(f"{len(manifest)} paintings after validation and de-duplication.")
        for by in ("style", "genre"):
            section.table(_captioned(counts(manifest, by), f"paintings by {by} and split"))
    by_reason = workspace.table(layout.plots_dir("ingest") / "skipped_by_reason.csv", ["reason", "count"], ["count"])
    section.table(frame_table(by_reason, "images ingest skipped, by reason"))
    skipped = workspace.table(layout.INGESTED / SKIPPED, ["source_path", "reason"])
    if skipped is not None:
        section.text("No source image was skipped." if skipped.empty else f"{len(skipped)} source images were skipped:")
        section.table(frame_table(skipped, "each skipped file and why", limit=FILE_ROWS))
    section.table(key_values(workspace.json(layout.metrics_json("generate")), "generate: the variants"))
    failed = workspace.table(layout.plots_dir("generate") / "failed_by_reason.csv", ["reason", "count"], ["count"])
    section.table(frame_table(failed, "variants generate could not make, by reason"))
    shown = examples(workspace, example_count, thumbnail)
    if shown:
        section.text(f"{len(shown)} originals (taken in turn from each style) and their variants, by strength:")
        section.blocks.append(Examples(shown))
    return section


def _captioned(table: Table, caption: str) -> Table:
    return Table(table.columns, table.rows, caption)


def descriptors(workspace: Workspace) -> Section:
    section = Section("descriptors", "Descriptor study and weights")
    score = workspace.json(layout.metrics_json("score")) or {}
    study = score.get("study") if isinstance(score.get("study"), dict) else {}
    weights = study.get("weights") if isinstance(study.get("weights"), dict) else {}
    if weights:
        fitted = (
            "fitted on the train pairs" if study.get("weights_fitted") is True else "as set in params (score.weights)"
        )
        section.text(f"The descriptor score is the weighted mean of these similarities; weights {fitted}.")
        section.table(
            Table(
                ["descriptor", "weight"],
                [[str(k), f"{number(v):g}" if number(v) is not None else "—"] for k, v in weights.items()],
            )
        )
    section.table(key_values(score, "metrics/score.json", skip=["study.weights"]))
    plots = layout.plots_dir("score")
    study_table = workspace.table(
        plots / "descriptor_study.csv", ["descriptor", "auc", "recall_at_1"], ["auc", "recall_at_1"]
    )
    if study_table is not None:
        section.table(
            from_docs(
                lambda: tables.descriptor_study(study_table),
                "every candidate descriptor on the held-out pairs",
                plots / "descriptor_study.csv",
                workspace.gaps,
            )
        )
    section.figure(
        lambda: figures.grouped_bars(
            study_table,
            "descriptor",
            ["auc", "recall_at_1"],
            "Descriptor study: pair AUC and source recall@1 (held-out)",
            (0, 1.05),
        ),
        "bars: pair AUC and recall@1 by descriptor",
        when=study_table is not None and not study_table.empty,
    )
    by_strength = _numeric_columns(workspace.table(plots / "by_strength.csv", ["strength"], ["strength"]))
    if by_strength is not None and len(by_strength.columns) > 1:
        series = {
            c: by_strength[["strength", c]].rename(columns={c: "y"})
            for c in by_strength.columns
            if c not in ("strength", "n")  # n: the pairs behind each point, not a similarity
        }
        section.figure(
            lambda: figures.curves(series, "strength", "Mean similarity of positive pairs by strength", "similarity"),
            "lines: mean similarity of positive pairs by strength, per descriptor",
        )
    redundancy = workspace.table(plots / "redundancy.csv", ["descriptor"])
    matrix = _square(redundancy)
    section.figure(
        lambda: figures.heatmap(matrix, "Redundancy: Spearman correlation between similarities"),
        "heatmap: Spearman correlation between descriptor similarities",
        when=matrix is not None,
    )
    section.table(frame_table(workspace.table(plots / "by_split.csv", ["split"]), "pairs and AUC by split"))
    return section


def _numeric_columns(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The columns of a table that are numbers in every row."""
    if frame is None:
        return None
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    return numeric[[c for c in numeric.columns if numeric[c].notna().all()]]


def _square(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """A correlation table (a `descriptor` column, then one column per descriptor) as a numeric matrix."""
    if frame is None or frame.empty:
        return None
    matrix = frame.set_index("descriptor").apply(pd.to_numeric, errors="coerce")
    return matrix if matrix.notna().all().all() else None


def training(workspace: Workspace) -> Section:
    section = Section("training", "Training: fine-tune and siamese")
    for stage, what in (("finetune", "the ResNet-50 classifier"), ("siamese", "the siamese regressor")):
        section.table(key_values(workspace.json(layout.metrics_json(stage)), f"{stage}: {what}"))
        curves = live_curves(workspace, layout.plots_dir(stage) / "plots" / "metrics")
        for name, table in curves.items():
            section.figure(
                lambda n=name, t=table, s=stage: figures.curves({n: t}, "step", f"{s}: {n} by epoch", n),
                f"line: {stage} {name} by epoch",
            )
    matrix = confusion_matrix(workspace, layout.plots_dir("finetune") / "plots" / "sklearn" / "confusion_matrix.json")
    section.figure(
        lambda: figures.heatmap(
            matrix, "finetune: confusion matrix (test images)", "predicted", "actual", integers=True
        ),
        "heatmap: finetune confusion matrix",
        when=matrix is not None,
    )
    return section


def live_curves(workspace: Workspace, folder: Path) -> dict[str, pd.DataFrame]:
    """The dvclive curves of a folder: each `<name>.tsv` (columns step, <name>) as a table of step and y."""
    if not workspace.path(folder).is_dir():
        workspace.gaps.add(folder, "not found: the stage that writes it has not run")
        return {}
    found = {}
    for path in sorted(workspace.path(folder).glob("*.tsv")):
        name = path.stem
        table = workspace.table(folder / path.name, ["step", name], ["step", name], sep="\t")
        if table is not None and not table.empty:
            found[name] = table[["step", name]].rename(columns={name: "y"})
    return found


def confusion_matrix(workspace: Workspace, relative: Path) -> pd.DataFrame | None:
    """dvclive's sklearn confusion matrix ([{actual, predicted}, ...]) as counts, actual by predicted."""
    records = workspace.json_value(relative)
    if records is None:
        return None
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(r, dict) and {"actual", "predicted"} <= set(r) for r in records)
    ):
        workspace.gaps.add(relative, "not a list of {actual, predicted} records")
        return None
    frame = pd.DataFrame(records)
    return pd.crosstab(frame["actual"].astype(str), frame["predicted"].astype(str))
