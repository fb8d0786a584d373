"""metrics/score.json is a headline with the same keys on any data; its breakdowns are tables.

(The same property of metrics/evaluate.json is in evaluate/test_run.py, of the training
stages' summaries in evaluate/test_run.py's stage chain.)
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from artsim.score.report import score_report, score_tables

NAMES = ("color", "texture", "edges", "score")


def scored_pairs(strengths: list[float], splits: list[str], seed: int) -> pd.DataFrame:
    """Scored pairs as score_dataset returns them: a positive and a negative per variant."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (strength, split) in enumerate(zip(strengths, splits)):
        for positive in (True, False):
            value = (0.7 if positive else 0.3) + rng.normal(0, 0.05)
            rows.append({"positive": positive, "strength": strength, "split": split, **dict.fromkeys(NAMES, value)})
    return pd.DataFrame(rows)


def flat(report: dict, prefix: str = "") -> dict:
    leaves = {}
    for key, value in report.items():
        leaves.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return leaves


def test_score_report_keys_do_not_depend_on_the_data() -> None:
    three_strengths = scored_pairs([0.25, 0.5, 0.75] * 4, ["train"] * 6 + ["test"] * 6, seed=0)
    one_strength = scored_pairs([0.4] * 5, ["train", "val", "val", "train", "train"], seed=1)  # no test pair
    first, second = score_report(three_strengths), score_report(one_strength)
    assert set(flat(first)) == set(flat(second))
    assert len(flat(first)) <= 16
    assert not [
        key for key in flat(first) for word in ("0.25", "0.5", "0.75", "by_strength", "by_split") if word in key
    ]
    assert second["test_auc"]["score"] is None and first["test_auc"]["score"] == 1.0
    json.dumps(first, allow_nan=False)


def test_score_tables_hold_the_breakdowns() -> None:
    scored = scored_pairs([0.25, 0.5, 0.75] * 4, ["train"] * 6 + ["test"] * 6, seed=0)
    tables = score_tables(scored)
    by_strength = tables["by_strength.csv"]
    assert by_strength["strength"].tolist() == [0.25, 0.5, 0.75] and by_strength["n"].tolist() == [4, 4, 4]
    # Positives only: every positive of the fixture scores about 0.7, every negative about 0.3.
    assert by_strength["score"].between(0.6, 0.8).all()
    by_split = tables["by_split.csv"].set_index("split")
    assert by_split.loc["test", ["total", "positives", "negatives"]].tolist() == [12, 6, 6]
    assert by_split.loc["val", "total"] == 0 and pd.isna(by_split.loc["val", "auc_score"])


def test_ingest_and_generate_headlines_name_no_reason_and_breakdowns_are_tables() -> None:
    from artsim.generate.assemble import failed_by_reason_table, generate_metrics
    from artsim.generate.run import Failure, GenerationResult
    from artsim.ingest.run import IngestReport

    clean, dirty = IngestReport(kept=3), IngestReport(kept=1)
    dirty.skip("a.jpg", "corrupt_image", "OSError")
    dirty.skip("b.jpg", "duplicate")
    assert set(flat(clean.as_metrics())) == set(flat(dirty.as_metrics()))
    assert dirty.as_metrics()["skipped"] == 2
    assert dirty.skipped_by_reason_table().to_dict("records") == [
        {"reason": "corrupt_image", "count": 1}, {"reason": "duplicate", "count": 1}]

    ok = GenerationResult(variants=[], reused=2, computed=1, failures=[])
    failed = GenerationResult(variants=[], reused=0, computed=0, unmatched=["o2"],
                              failures=[Failure("k", "o1", 0.5, "nan_image"), Failure("k2", "o1", 0.75, "nan_image")])
    assert set(generate_metrics(ok, 3)) == set(generate_metrics(failed, 0))
    assert generate_metrics(failed, 0)["failed"] == 2
    assert failed_by_reason_table(failed).to_dict("records") == [
        {"reason": "nan_image", "count": 2}, {"reason": "no_variant_file", "count": 1}]


def test_generate_metrics_say_what_was_made_not_how_the_run_came_by_it() -> None:
    # The same output made from scratch on one machine and read from the store (one entry healed) on
    # another: `dvc metrics diff` must report nothing.
    from artsim.generate.assemble import generate_metrics, run_tallies
    from artsim.generate.run import GenerationResult

    fresh = GenerationResult(variants=[], reused=0, computed=3, failures=[])
    from_store = GenerationResult(variants=[], reused=3, computed=1, failures=[], healed=1)
    assert generate_metrics(fresh, 3) == generate_metrics(from_store, 3)
    assert run_tallies(from_store) == "3 reused, 1 computed, 0 failed, 1 damaged store entries made again"
