"""The `artsim` command: compare images (two, or every pair of a CSV), search the originals, index a folder,
serve the model and the collection over HTTP, describe a workspace.

A thin layer over artsim.app.api, .search, .bulk, .indexes, .serve and .workspace_info. Results go to stdout
(text, or JSON with --json); progress and warnings to stderr. A problem the user can fix
(no trained model, an unusable image, a bad option) exits with status 2 and one line on
stderr, never a traceback. Nothing heavy (torch, faiss) is imported before the arguments and the
input files were checked, so --help and mistakes answer at once.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from artsim import __version__
from artsim.core import layout
from artsim.core.errors import UserError
from artsim.app.inputs import must_exist, query_paths
from artsim.index import RANKINGS

EXIT_USER_ERROR = 2
LOOPBACK = "127.0.0.1"


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return positive_int(text) if text.strip() != "0" else 0


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="artsim", description="Apply artsim's trained similarity model to your own images.")
    parser.add_argument("--version", action="version", version=f"artsim {__version__}")
    common = OneLineParser(add_help=False)
    common.add_argument("--workspace", type=Path, default=Path("."),
                        help="an artsim workspace after `dvc repro` (default: the current folder)")
    common.add_argument("--model", type=Path, default=None,
                        help="a model folder (models/siamese or a copy of it); default: the workspace's")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    compare = commands.add_parser("compare", parents=[common], help="score two images (or every pair of a CSV): model, descriptor score and its parts")
    compare.add_argument("a", nargs="?", help="an image (e.g. the generated variant)")
    compare.add_argument("b", nargs="?", help="another image (e.g. the painting)")
    compare.add_argument("--plot", type=Path, default=None, help="write a PNG: both images, the scores, where they differ")
    compare.add_argument("--pairs", type=Path, default=None, help="a CSV with columns a,b: score every pair, write a CSV")
    compare.add_argument("--out", type=Path, default=None, help="with --pairs: write the CSV there (default: stdout)")

    search = commands.add_parser("search", parents=[common], help="the originals most similar to each query image")
    search.add_argument("queries", nargs="*", help="query images")
    search.add_argument("--queries", dest="queries_dir", type=Path, default=None, help="every image in this folder is a query")
    search.add_argument("--queries-file", type=Path, default=None, help="a text file: one query image path per line")
    search.add_argument("--top-k", type=positive_int, default=5, help="how many results (default 5)")
    search.add_argument("--originals", type=Path, default=None,
                        help="a folder of images to search, indexed in the user cache (default: the workspace's ingested originals)")
    search.add_argument("--index", type=Path, default=None, help="an index made by `artsim index DIR --out INDEX`")
    search.add_argument("--by", choices=RANKINGS, default=None,
                        help="rank by the model, pHash, or both fused (default: the best on held-out queries, metrics/evaluate/search.json)")
    search.add_argument("--shortlist", type=positive_int, default=None,
                        help="candidates re-ranked by the model after the embedding-cosine shortlist (default 100)")
    search.add_argument("--jsonl", action="store_true", help="one JSON line per query")
    search.add_argument("--csv", action="store_true", help="CSV: one row per (query, hit)")

    index = commands.add_parser("index", parents=[common], help="index a folder of images (or a workspace's originals) for search")
    index.add_argument("folder", type=Path, help="a folder of images, or a workspace")
    index.add_argument("--out", type=Path, default=None, help="where the index goes (default: the user cache, where search finds it)")

    serve = commands.add_parser("serve", help="the model and the collection behind a local HTTP API and page")
    serve.add_argument("--workspace", type=Path, default=Path("."), help="an artsim workspace after `dvc repro` (default: the current folder)")
    serve.add_argument("--model", type=Path, default=None, help="a model folder; default: the workspace's")
    serve.add_argument("--index", type=Path, default=None,
                       help="an index made by `artsim index DIR --out INDEX` (default: the workspace's data/index when built "
                            "with this model, else its ingested originals, indexed in the user cache)")
    serve.add_argument("--originals", type=Path, default=None, help="a folder of images to search instead, indexed in the user cache")
    serve.add_argument("--host", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK}: this machine only)")
    serve.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    serve.add_argument("--max-concurrent", type=positive_int, default=2, help="requests computed at once (default 2)")
    serve.add_argument("--max-queue", type=non_negative_int, default=8, help="requests waiting beyond those; more get 503 (default 8)")

    info = commands.add_parser("info", parents=[common], help="what the workspace holds")
    info.add_argument("--no-status", action="store_true", help="skip `dvc status` (stale stages)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_combinations(parser, args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        return _fail(str(exc))
    except OSError as exc:  # e.g. --plot into a folder that cannot be written
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except KeyboardInterrupt:
        return 130


def _check_combinations(parser: OneLineParser, args: argparse.Namespace) -> None:
    """What argparse alone cannot say: which options go together (status 2, one line, as argparse's own)."""
    if args.command == "compare" and args.pairs is None and (args.a is None or args.b is None):
        parser.error("compare needs two images (a b), or --pairs pairs.csv")
    if args.command == "compare" and args.pairs is not None and (args.a is not None or args.plot is not None):
        parser.error("--pairs scores the CSV's pairs: give no image and no --plot with it")
    if args.command == "search" and sum([args.json, args.jsonl, args.csv]) > 1:
        parser.error("give one of --json, --jsonl, --csv")


def _fail(message: str) -> int:
    print(f"artsim: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USER_ERROR


def _scorer(args: argparse.Namespace):
    from artsim.app.api import load

    return load(args.model if args.model is not None else args.workspace)


def _print(payload: Any, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2) if as_json else text)


def run_compare(args: argparse.Namespace) -> int:
    if args.pairs is not None:
        return run_compare_pairs(args)
    must_exist([args.a, args.b], args)
    from artsim.app.api import compare_payload, open_image, parts_text
    from artsim.app.difference import difference_maps, write_comparison_plot

    scorer = _scorer(args)
    first, second = open_image(args.a), open_image(args.b)
    payload = compare_payload(scorer, first, second, (args.a, args.b))
    if args.plot is not None:
        maps = difference_maps(first.image, second.image, scorer.descriptor.describe)
        write_comparison_plot(first.image, second.image, (args.a, args.b), payload, maps, args.plot)
        payload["plot"] = str(args.plot)
    text = (f"model score       {payload['model_score']:.4f}   (the model's estimate of the descriptor score)\n"
            f"descriptor score  {payload['descriptor_score']:.4f}   {parts_text(payload['similarities'], payload['weights'])}\n"
            f"verdict           {payload['verdict_text']}")
    if args.plot is not None:
        text += f"\nplot              {args.plot}"
    _print(payload, args.json, text)
    return 0


def run_compare_pairs(args: argparse.Namespace) -> int:
    must_exist([args.pairs], args)
    from artsim.app.bulk import compare_pairs, header, read_pairs, write_rows

    pairs = read_pairs(args.pairs)
    scorer = _scorer(args)
    rows = compare_pairs(scorer, pairs)
    if args.out is None:
        write_rows(sys.stdout, header(scorer), rows)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            write_rows(handle, header(scorer), rows)
    return 0


def run_search(args: argparse.Namespace) -> int:
    queries = query_paths(args)
    from artsim.app.indexes import default_ranking, open_index
    from artsim.app.search import DEFAULT_SHORTLIST, index_skipped, search_index, threshold_note

    scorer = _scorer(args)
    opened = open_index(scorer, args.index, args.originals, args.workspace)
    for path, why in index_skipped(opened).items():
        print(f"artsim: skipped candidate {path}: {why}", file=sys.stderr)
    by = args.by or default_ranking(scorer)
    results = search_index(scorer, opened, queries, args.top_k, args.shortlist or DEFAULT_SHORTLIST, by)
    failed = _write_results(args, results, index_skipped(opened), threshold_note(scorer))
    return EXIT_USER_ERROR if failed else 0


def _write_results(args: argparse.Namespace, results, skipped: dict[str, str], legend: str) -> int:
    """Print each query's result as it comes (hits at the 90%-precision threshold marked, the legend saying
    on how many pairs it rests); the number of queries that could not be used."""
    from artsim.app.search import search_json  # torch: imported once a command needs it, as everywhere here

    failed, collected = 0, []
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(["query", "rank", "score", "cosine", "likely_derived", "artist", "title", "path", "error"])
    for result in results:
        failed += result.error is not None
        if result.error:
            print(f"artsim: query {result.query}: {result.error}", file=sys.stderr)
        if writer:
            rows = [[result.query, h.rank, h.score, h.cosine, "" if h.likely_derived is None else h.likely_derived, h.artist, h.title, h.path, ""]
                    for h in result.hits]
            writer.writerows(rows or [[result.query, "", "", "", "", "", "", "", result.error or ""]])
        elif args.jsonl:
            print(json.dumps(result.as_dict() | {"threshold_note": legend}), flush=True)
        elif args.json:
            collected.append(search_json(result, skipped, legend))
        elif not result.error:  # text: a query that could not be used is only its line on stderr
            lines = [f"{h.rank:>4}  {h.score:.4f}{' *' if h.likely_derived else '  '}  {h.artist or '?'} — {h.title or '?'}  {h.path}"
                     for h in result.hits]
            print("\n".join([f"query {result.query}", "rank  score     artist — title  path", *lines, legend]))
    if args.json:
        print(json.dumps(collected[0] if len(collected) == 1 else collected, indent=2))
    return failed


def run_index(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: not a folder")
    from artsim.app.indexes import index_collection
    from artsim.index.collection import CollectionError, folder_collection, workspace_collection

    scorer = _scorer(args)
    try:
        is_workspace = (args.folder / layout.INGESTED / layout.MANIFEST).is_file()
        collection = workspace_collection(args.folder) if is_workspace else folder_collection(args.folder)
    except CollectionError as exc:
        raise UserError(str(exc)) from None
    opened = index_collection(scorer, collection, args.out)
    report = opened.report.as_dict() | {"index": str(opened.folder)}
    text = (f"index      {opened.folder}\noriginals  {report['originals']} ({report['embedded']} embedded, "
            f"{report['hashed']} read, {report['unchanged']} unchanged, {len(report['skipped'])} without a vector)")
    _print(report, args.json, text)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from artsim.app.workspace_info import workspace_info

    if not args.workspace.is_dir():
        raise UserError(f"--workspace {args.workspace}: not a folder")
    info = workspace_info(args.workspace, with_status=not args.no_status)
    _print(info, args.json, info_text(info))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from artsim.app.serve import create_app
    from artsim.app.service import ServiceLimits, load_state

    limits = ServiceLimits(max_concurrent=args.max_concurrent, max_queue=args.max_queue)
    if args.host not in (LOOPBACK, "localhost", "::1"):
        print(f"artsim: warning: listening on {args.host}, not only this machine: anyone who can reach port {args.port} "
              "can send images to score (there is no authentication)", file=sys.stderr)
    state = load_state(args.workspace, args.model, args.index, args.originals)
    health = state.health()
    print(f"artsim: serving {health['index_size']} originals with model {health['model_fingerprint'][:12]} "
          f"on http://{args.host}:{args.port}/ (API: /docs)", file=sys.stderr)
    uvicorn.run(create_app(state, limits), host=args.host, port=args.port, log_level="warning")
    return 0


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
        lines.append("stale       " + ("unknown (dvc status failed)" if stale is None else ", ".join(stale) or "none: up to date"))
    return "\n".join(lines)


COMMANDS = {"compare": run_compare, "search": run_search, "index": run_index, "serve": run_serve, "info": run_info}


if __name__ == "__main__":
    sys.exit(main())
