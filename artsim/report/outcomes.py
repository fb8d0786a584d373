"""The report's result sections: the test figures of the model beside every peer, the
thresholds and their precision, the transformed held-out set, the gallery and the index."""

from __future__ import annotations

import artsim.report.figures as figures
import artsim.report.rows as rows
import artsim.report.tables as tables
from artsim.core import layout
from artsim.evaluate.verdict import FEW_POSITIVES, PRECISION_LEVELS
from artsim.report.blocks import Figure, Section, Thumbs
from artsim.report.examples import altered, gallery
from artsim.report.sources import Workspace

PLOTS = layout.plots_dir("evaluate")
SCORER_FIGURES = ["pair_auc", "recall_at_1", "mrr"]


def results(workspace: Workspace, evaluate: dict | None) -> Section:
    section = Section("results", "Results on the test split, every peer side by side")
    evaluate_json = layout.metrics_json("evaluate")
    if evaluate:
        score = workspace.json(layout.metrics_json("score")) or {}
        finetune = workspace.json(layout.metrics_json("finetune")) or {}
        section.table(
            rows.from_docs(
                lambda: tables.regression(evaluate, score, finetune),
                "the run's headline figures",
                evaluate_json,
                workspace.gaps,
            )
        )
        section.table(
            rows.from_docs(
                lambda: tables.peers(evaluate),
                "every scorer: pair discrimination and source retrieval among the whole collection",
                evaluate_json,
                workspace.gaps,
            )
        )
    scorers = workspace.table(PLOTS / "scorers.csv", ["scorer", *SCORER_FIGURES], SCORER_FIGURES)
    section.figure(
        lambda: figures.grouped_bars(scorers, "scorer", SCORER_FIGURES, "Scorers on the test split", (0, 1.05)),
        "bars: pair AUC, recall@1 and MRR by scorer",
        when=scorers is not None and not scorers.empty,
    )
    predictions = workspace.table(
        PLOTS / "predictions.csv", ["target", "prediction", "positive"], ["target", "prediction"]
    )
    section.figure(
        lambda: figures.scatter(
            predictions, "target", "prediction", "positive", "Predicted vs descriptor score (test pairs)"
        ),
        "scatter: model prediction against the descriptor score",
        when=predictions is not None and not predictions.empty,
    )
    for column in ("strength", "style"):
        errors = workspace.table(PLOTS / f"error_by_{column}.csv", [column, "mae", "n"], ["mae"])
        section.figure(
            lambda e=errors, c=column: figures.grouped_bars(e, c, ["mae"], f"Mean absolute error by {c} (test pairs)"),
            f"bars: mean absolute error by {column}",
            when=errors is not None and not errors.empty,
        )
    return section


def thresholds(workspace: Workspace, evaluate: dict | None) -> Section:
    section = Section("thresholds", "Verdict thresholds and their precision")
    section.text(
        'The lowest score at which "derived from" reaches each precision on the held-out test pairs '
        "(derived: a painting and its own variant; unrelated: every other held-out pair)."
    )
    if evaluate:
        section.table(
            rows.from_docs(
                lambda: tables.thresholds(evaluate),
                "each scorer's thresholds",
                layout.metrics_json("evaluate"),
                workspace.gaps,
            )
        )
        section.text(f"Under {FEW_POSITIVES} derived pairs a threshold is rough: its precision rests on few pairs.")
    shipped = workspace.json(layout.VERDICT)
    if shipped:
        sha = str(shipped.get("model_sha256", ""))
        section.text(
            f"Shipped with the model (models/verdict.json, for the weights with SHA-256 {sha[:16]}…), "
            f"on {shipped.get('positives', '—')} derived and {shipped.get('negatives', '—')} unrelated pairs; "
            "artsim compare, search and serve state their verdicts with these:"
        )
        section.table(rows.verdict(shipped))
    curves = {}
    for name in rows.scorer_names(evaluate or {}):
        table = workspace.table(
            PLOTS / "precision_recall" / f"{name}.csv", ["precision", "recall"], ["precision", "recall"]
        )
        if table is not None and not table.empty:
            curves[name] = table
    section.figure(
        lambda: figures.precision_recall(curves, PRECISION_LEVELS, "Precision / recall, derived vs unrelated (test)"),
        "lines: precision against recall by scorer",
        when=bool(curves),
    )
    return section


def transformed(workspace: Workspace, evaluate: dict | None, thumbnail: int) -> Section:
    section = Section("transformed", "The transformed held-out set")
    section.text(
        "Every test variant also mirrored, cropped, halved, recompressed, tilted and turned grey (never seen in "
        "training), as a query among all originals; one variant under each alteration:"
    )
    shown = altered(workspace, thumbnail)
    if shown:
        section.blocks.append(Thumbs(shown))
    table = workspace.table(PLOTS / "transformed.csv", ["transform", "scorer", *SCORER_FIGURES], SCORER_FIGURES)
    scorers = rows.scorer_names(evaluate or {})
    if table is not None and not table.empty:
        section.table(
            rows.from_docs(
                lambda: tables.transformed(table),
                "per alteration, each scorer's recall@1 / pair AUC",
                PLOTS / "transformed.csv",
                workspace.gaps,
            )
        )
        wide = table.pivot_table(
            index="transform", columns="scorer", values="recall_at_1", aggfunc="first", sort=True
        ).reset_index()
        order = [s for s in scorers if s in wide.columns] + sorted(
            c for c in wide.columns if c not in scorers and c != "transform"
        )
        section.figure(
            lambda: figures.grouped_bars(
                wide, "transform", order, "Source recall@1 by alteration and scorer", (0, 1.05)
            ),
            "bars: recall@1 by alteration and scorer",
        )
    return section


def gallery_section(workspace: Workspace) -> Section:
    section = Section("gallery", "Gallery: best, median and worst test pairs")
    uri = gallery(workspace)
    if uri:
        section.blocks.append(Figure(uri, "evaluate's gallery of test pairs with their scores", style="wide"))
    return section


def index(workspace: Workspace) -> Section:
    section = Section("index", "The search index")
    section.table(rows.key_values(workspace.json(layout.metrics_json("index")), "metrics/index.json"))
    return section
