"""Every shape the `artsim` command and `artsim serve` answer with: the text, CSV and JSON of compare, search,
index and info, in one place, so that the CLI and HTTP say the same thing the same way.

Nothing here computes a score or reads a file: each function shapes what it is given.
"""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from artsim.evaluate.verdict import evidence_text
from artsim.index.search import Hit, QueryResult

if TYPE_CHECKING:
    from artsim.app.api import Scorer

SEARCH_FORMATS = ("text", "json", "jsonl", "csv")
SEARCH_CSV_HEADER = ["query", "rank", "score", "cosine", "likely_derived", "artist", "title", "path", "id", "export_id",
                     "error"]


def print_payload(payload: Any, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2) if as_json else text)


# --- compare ---------------------------------------------------------------------------------

def parts_text(similarities: dict[str, float], weights: dict[str, float]) -> str:
    """Each part of the descriptor score with its weight, as every display shows them (the parts in force)."""
    return ", ".join(f"{name} {value:.3f} (weight {weights.get(name, 0.0):g})" for name, value in similarities.items())


def compare_text(payload: dict[str, Any]) -> str:
    text = (f"model score       {payload['model_score']:.4f}   (the model's estimate of the descriptor score)\n"
            f"descriptor score  {payload['descriptor_score']:.4f}   "
            f"{parts_text(payload['similarities'], payload['weights'])}\n"
            f"verdict           {payload['verdict_text']}")
    return text + (f"\nplot              {payload['plot']}" if "plot" in payload else "")


def pairs_header(descriptor_names: Iterable[str]) -> list[str]:
    """The columns of `artsim compare --pairs`."""
    return ["a", "b", "model_score", "descriptor_score", *descriptor_names, "error"]


def write_rows(handle: TextIO, head: list[str], rows: Iterable[list[object]]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(head)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


# --- search ----------------------------------------------------------------------------------

def threshold_note(scorer: "Scorer") -> str:
    """What marks a hit: the lowest-precision threshold with its evidence, or why there is none."""
    lowest = scorer.verdict(-float("inf"))  # below every threshold: judged by the lowest one
    if lowest.derived is None:
        return lowest.text
    return (f"* score >= {lowest.threshold:.3f}: derived likely (the threshold at {lowest.precision:.0%} precision on "
            f"{evidence_text(scorer.thresholds)})")


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
    rows = [[result.query, h.rank, h.score, h.cosine, "" if h.likely_derived is None else h.likely_derived, h.artist,
             h.title, h.path, h.id, h.export_id or "", ""] for h in result.hits]
    return rows or [[result.query, *[""] * (len(SEARCH_CSV_HEADER) - 2), result.error or ""]]


def hit_name(hit: Hit) -> str:
    """"Title — Artist", what of them is known ("?" when neither is)."""
    return " — ".join(part for part in (hit.title, hit.artist) if part) or "?"


def hit_opener(hit: Hit) -> str:
    """What opens the hit: `export ID` (for `artsim export image ID OUT`) in a workspace, else its file."""
    return f"export {hit.export_id}" if hit.export_id is not None else hit.path


def search_text(result: QueryResult, note: str) -> str:
    lines = [f"{h.rank:>4}  {h.score:.4f}{' *' if h.likely_derived else '  '}  {hit_name(h)}  {hit_opener(h)}"
             for h in result.hits]
    return "\n".join([f"query {result.query}", "rank  score     title — artist  file, or export ID", *lines, note])


def write_search_results(form: str, results: Iterable[QueryResult], skipped: dict[str, str], note: str) -> int:
    """Print each query's result as it comes in `form` (SEARCH_FORMATS), hits at the 90%-precision threshold
    marked and the note saying on how many pairs it rests; the number of queries that could not be used."""
    failed, collected = 0, []
    writer = csv.writer(sys.stdout, lineterminator="\n") if form == "csv" else None
    if writer:
        writer.writerow(SEARCH_CSV_HEADER)
    for result in results:
        failed += result.error is not None
        if result.error:
            print(f"artsim: query {result.query}: {result.error}", file=sys.stderr)
        if writer:
            writer.writerows(search_csv_rows(result))
        elif form == "jsonl":
            print(json.dumps(result_json(result) | {"threshold_note": note}), flush=True)
        elif form == "json":
            collected.append(search_json(result, skipped, note))
        elif not result.error:  # text: a query that could not be used is only its line on stderr
            print(search_text(result, note))
    if form == "json":
        print(json.dumps(collected[0] if len(collected) == 1 else collected, indent=2))
    return failed


# --- index and info --------------------------------------------------------------------------

def index_text(report: dict[str, Any]) -> str:
    return (f"index      {report['index']}\noriginals  {report['originals']} ({report['embedded']} embedded, "
            f"{report['hashed']} read, {report['unchanged']} unchanged, {len(report['skipped'])} without a vector)")


def info_text(info: dict[str, Any]) -> str:
    originals, variants, pairs = info["originals"], info["variants"], info["pairs"]
    lines = [f"workspace   {info['workspace']}",
             f"originals   {originals['count']} {originals['by_split']}" if originals else "originals   none (run `dvc repro`)",
             f"variants    {variants['count']} {variants['by_backend']}" if variants else "variants    none",
             f"pairs       {pairs['count']} ({pairs['positives']} positive)" if pairs else "pairs       none"]
    for name, model in info["models"].items():
        if not model["trained"]:
            lines.append(f"{name:<11} not trained")
            continue
        lines.append(f"{name:<11} {model['path']}  metrics: {json.dumps(model['metrics'])}")
        if model.get("test_metrics"):
            lines.append(f"{'':<11} test: {json.dumps(model['test_metrics'])}")
    stale = info["stale_stages"]
    if info["stale_stages_checked"]:
        lines.append("stale       " + ("unknown (dvc status failed)" if stale is None else ", ".join(stale)
                                       or "none: up to date"))
    return "\n".join(lines)
