"""Every shape the `artsim` command and `artsim serve` answer with: the text, CSV and JSON of compare, search,
index and info, in one place, so that the CLI and HTTP say the same thing the same way.

Nothing here computes a score or reads a file: each function shapes what it is given. Every input gets its
result in the shape asked for, an unusable one with its reason (`error`) in place of its scores. Text is for
people: lines of at most TEXT_WIDTH columns (a path too long for its place gets a line of its own, and only
one longer than TEXT_WIDTH overflows it), figures to 3 significant digits (`figure`); JSON keeps full precision.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from artsim.evaluate.verdict import evidence_text, precision_text
from artsim.index.query import SCORER_WORDS, ranking_named
from artsim.index.search import Hit, QueryResult

if TYPE_CHECKING:
    from artsim.app.api import Scorer

SEARCH_FORMATS = ("text", "json", "jsonl", "csv")
SEARCH_CSV_HEADER = ["query", "rank", "score", "cosine", "likely_derived", "verdict_text", "artist", "title", "path",
                     "id", "export_id", "error"]
TEXT_WIDTH = 100
LABEL_WIDTH = 18  # compare's labels ("descriptor score  ")
KEEP_TOGETHER = "\xa0"  # a space `labelled` never breaks a line at (textwrap splits at ASCII whitespace only)


def print_payload(payload: Any, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2) if as_json else text)


def figure(value: object) -> str:
    """A number as text shows it: 3 significant digits (0.812, 0.0206, 123), whole numbers as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    rounded = float(f"{value:.3g}")
    return str(int(rounded)) if rounded.is_integer() and abs(rounded) < 1e6 else f"{rounded:.3g}"


def labelled(label: str, text: str, width: int = LABEL_WIDTH) -> str:
    """`text` after `label`, wrapped to TEXT_WIDTH under itself (words and paths are never broken)."""
    if " " not in text and width + len(text) > TEXT_WIDTH:  # a long path: on a line of its own, whole
        return f"{label.rstrip()}\n{text}" if label.strip() else text
    head = label.ljust(width) if len(label) < width or not label else label + " "
    wrapped = textwrap.fill(text, TEXT_WIDTH, initial_indent=head, subsequent_indent=" " * width,
                            break_long_words=False, break_on_hyphens=False)
    return wrapped.replace(KEEP_TOGETHER, " ") or label.rstrip()


def fitted(text: str, width: int = TEXT_WIDTH) -> str:
    """One line cut to `width` columns, an ellipsis where it was cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


def report_unusable(what: str, name: str, why: str) -> None:
    """One line on stderr per input that could not be used (its result, with `why`, is in the output too)."""
    said = " ".join(why.split())
    print(f"artsim: {what} {name}: {said}" if not said.startswith(name) else f"artsim: {what} {said}", file=sys.stderr)


# --- compare ---------------------------------------------------------------------------------

def parts_text(similarities: dict[str, float], weights: dict[str, float]) -> str:
    """Each part of the descriptor score with its weight, as every display shows them (the parts in force)."""
    return ", ".join(f"{name} {value:.3f} (weight {weights.get(name, 0.0):g})" for name, value in similarities.items())


def compare_text(payload: dict[str, Any]) -> str:
    """compare's text: the pair, both scores, the descriptor score's parts one per line, the verdict; or the error."""
    lines = [labelled("a", str(payload["a"])), labelled("b", str(payload["b"]))]
    if "error" in payload:
        return "\n".join([*lines, labelled("error", payload["error"])])
    weights = payload["weights"]
    model_score = f"{figure(payload['model_score']):<7} the model's estimate of the descriptor score"
    lines += [labelled("model score", model_score),
              labelled("descriptor score", f"{figure(payload['descriptor_score']):<7} the weighted mean of its parts:"),
              *(labelled(f"  {name}", f"{figure(value):<7} weight {figure(weights.get(name, 0.0))}")
                for name, value in payload["similarities"].items()),
              labelled("verdict", payload["verdict_text"])]
    return "\n".join(lines + ([labelled("plot", str(payload["plot"]))] if "plot" in payload else []))


def compare_error_json(names: tuple[str, str], error: str) -> dict[str, str]:
    """compare's answer for a pair it could not score: the pair and why (no score)."""
    return {"a": names[0], "b": names[1], "error": error}


def pairs_header(descriptor_names: Iterable[str]) -> list[str]:
    """The columns of `artsim compare --pairs` (verdict: the model score's, as compare's JSON names it)."""
    return ["a", "b", "model_score", "descriptor_score", *descriptor_names, "verdict", "error"]


def write_pairs(handle: TextIO, head: list[str], rows: Iterable[list[object]]) -> tuple[int, int]:
    """The CSV of `compare --pairs`, one row per pair; (rows, rows with an error), each of those also on stderr."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(head)
    count = failed = 0
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if row[-1]:
            failed += 1
            report_unusable("pair on line", str(count + 1), str(row[-1]))
    return count, failed


# --- search ----------------------------------------------------------------------------------

def threshold_note(scorer: "Scorer", ranking: str) -> str:
    """What marks a hit of `ranking`: the lowest-precision threshold of each scorer judging it (Ranking.judged_by)
    with its evidence, or why there is none."""
    rules = []
    for name in ranking_named(ranking).judged_by:
        lowest = scorer.verdict(-float("inf"), name)  # below every threshold: judged by the lowest one
        if lowest.derived is None:
            return f"no mark by {ranking}: {lowest.text}"
        thresholds = scorer.thresholds_of(name)
        rules.append(f"{SCORER_WORDS[name]} >= {lowest.threshold:.3f} (the threshold at "
                     f"{precision_text(thresholds, lowest.precision)}, on {evidence_text(thresholds)})")
    return f"* derived likely (by {ranking}): " + " and ".join(rules)


def skipped_json(skipped: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": path, "reason": why} for path, why in skipped.items()]


def result_json(result: QueryResult) -> dict:
    """One query's hits, as `artsim search --jsonl` prints them; an unusable query with its error."""
    found = {"query": result.query, "candidates": result.candidates, "results": [asdict(hit) for hit in result.hits]}
    return found | ({"error": result.error} if result.error else {})


def search_json(result: QueryResult, skipped: dict[str, str], note: str) -> dict:
    """One query's result as `artsim search --json` prints it (and POST /search returns it, with its ranking)."""
    return result_json(result) | {"threshold_note": note, "skipped": skipped_json(skipped)}


def served_search_json(ranking: str, result: QueryResult, skipped: dict[str, str], note: str) -> dict:
    """POST /search's answer: the ranking used (field `by`, as the request names it), then search_json."""
    return {"by": ranking, **search_json(result, skipped, note)}


def search_csv_rows(result: QueryResult) -> list[list[object]]:
    rows = [[result.query, h.rank, h.score, h.cosine, "" if h.likely_derived is None else h.likely_derived,
             h.verdict_text, h.artist, h.title, h.path, h.id, h.export_id or "", ""] for h in result.hits]
    return rows or [[result.query, *[""] * (len(SEARCH_CSV_HEADER) - 2), result.error or ""]]


def hit_name(hit: Hit) -> str:
    """"Title — Artist", what of them is known ("?" when neither is)."""
    return " — ".join(part for part in (hit.title, hit.artist) if part) or "?"


def hit_opener(hit: Hit) -> str:
    """What opens the hit: `export ID` (for `artsim export image ID OUT`) in a workspace, else its file."""
    return f"export {hit.export_id}" if hit.export_id is not None else hit.path


def search_text(result: QueryResult, note: str) -> str:
    """One query's hits, best first: rank, score (* at or above the threshold), artist — title, then the path
    on a line of its own; an unusable query with its error instead."""
    if result.error:
        return "\n".join([labelled("query", result.query, 6), labelled("error", result.error, 6)])
    lines = [labelled("query", result.query, 6), "rank  score      title — artist / file, or export ID"]
    for hit in result.hits:
        mark = "*" if hit.likely_derived else " "
        lines += [fitted(f"{hit.rank:>4}  {figure(hit.score):<7} {mark}  {hit_name(hit)}"),
                  labelled("", hit_opener(hit), 6)]
    return "\n".join([*lines, labelled("", note, 0)])


def write_search_results(form: str, results: Iterable[QueryResult], skipped: dict[str, str], note: str) -> int:
    """Print each query's result as it comes in `form` (SEARCH_FORMATS), hits at the 90%-precision threshold
    marked and the note saying on how many pairs it rests, an unusable query with its error (and a line on
    stderr); the number of queries that could not be used. JSON, JSONL and CSV give each hit its verdict sentence
    (`verdict_text`); the text keeps to the mark, which the note explains."""
    failed, collected = 0, []
    writer = csv.writer(sys.stdout, lineterminator="\n") if form == "csv" else None
    if writer:
        writer.writerow(SEARCH_CSV_HEADER)
    for result in results:
        failed += result.error is not None
        if result.error:
            report_unusable("query", result.query, result.error)
        if writer:
            writer.writerows(search_csv_rows(result))
        elif form == "jsonl":
            print(json.dumps(result_json(result) | {"threshold_note": note}), flush=True)
        elif form == "json":
            collected.append(search_json(result, skipped, note))
        else:
            print(search_text(result, note), flush=True)
    if form == "json":
        print(json.dumps(collected[0] if len(collected) == 1 else collected, indent=2))
    return failed


# --- index and info --------------------------------------------------------------------------

INFO_LABEL = 11
# The figures `artsim info` shows of each model (metrics/<model>.json) and of the test (metrics/evaluate.json,
# the model's own under "model"), by the names --json gives them; --json has every figure.
INFO_FIGURES = {"finetune": ("test_accuracy", "test_macro_f1", "test_majority_accuracy"),
                "siamese": ("val_mse", "val_baseline_mse")}
TEST_FIGURES = ("mse", "baseline_mse", "r2", "spearman", "n_test_pairs")
MODEL_TEST_FIGURES = ("pair_auc", "mrr", "recall_at_1", "recall_at_5")


def index_text(report: dict[str, Any]) -> str:
    """`artsim index`'s text, in the words of its JSON (embedded, hashed, unchanged, skipped)."""
    counts = ", ".join(f"{report[key]} {key}" for key in ("embedded", "hashed", "unchanged"))
    lines = [labelled("index", str(report["index"]), INFO_LABEL),
             labelled("originals", f"{report['originals']}: {counts}, {len(report['skipped'])} skipped", INFO_LABEL)]
    if report.get("rebuilt_because"):
        lines.append(labelled("rebuilt", str(report["rebuilt_because"]), INFO_LABEL))
    lines += [labelled("skipped", f"{name}: {why}", INFO_LABEL) for name, why in report["skipped"].items()]
    return "\n".join(lines)


def figures_text(values: dict[str, Any] | None, keys: Iterable[str]) -> str:
    """`key value, ...` of the keys present (not null), values to 3 significant digits."""
    values = values or {}
    return ", ".join(f"{key}{KEEP_TOGETHER}{figure(values[key])}" for key in keys if values.get(key) is not None)


def counts_text(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{name} {count}" for name, count in (counts or {}).items())


def info_text(info: dict[str, Any]) -> str:
    """`artsim info`: a short summary of the workspace (`--json` for everything, at full precision)."""
    originals, variants, pairs = info["originals"], info["variants"], info["pairs"]
    lines = [labelled("workspace", info["workspace"], INFO_LABEL),
             labelled("originals", f"{originals['count']}: {counts_text(originals['by_split'])}" if originals
                      else "none (run `dvc repro`)", INFO_LABEL),
             labelled("variants", f"{variants['count']}: {counts_text(variants['by_backend'])}" if variants else "none",
                      INFO_LABEL),
             labelled("pairs", f"{pairs['count']}: {pairs['positives']} positive" if pairs else "none", INFO_LABEL)]
    for name, model in info["models"].items():
        if not model["trained"]:
            lines.append(labelled(name, "not trained", INFO_LABEL))
            continue
        shown = figures_text(model["metrics"], INFO_FIGURES.get(name, ()))
        lines.append(labelled(name, f"{model['path']}" + (f": {shown}" if shown else ""), INFO_LABEL))
        test = model.get("test_metrics") or {}
        tested = ", ".join(filter(None, [figures_text(test, TEST_FIGURES),
                                         figures_text(test.get("model"), MODEL_TEST_FIGURES)]))
        if tested:
            lines.append(labelled("  test", tested, INFO_LABEL))
    stale = info["stale_stages"]
    if info["stale_stages_checked"]:
        lines.append(labelled("stale", "unknown (dvc status failed)" if stale is None else ", ".join(stale)
                              or "none: up to date", INFO_LABEL))
    return "\n".join([*lines, "(every figure: artsim info --json)"])
