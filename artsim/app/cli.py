"""The `artsim` command: compare images (two, or every pair of a CSV), search the originals, index a folder,
serve the model and the collection over HTTP, describe a workspace.

The parser and the COMMANDS table over artsim.app.api, .indexes (the index and its Searcher), .bulk, .serve and
.workspace_info; every shape printed comes from artsim.app.render. Results go to stdout (text, or JSON with
--json); progress and warnings to stderr. Every usable input is answered; an unusable one (missing, not an
image, damaged) costs only its own result, which carries its reason in the output and on stderr, and the
status is 2 when any result failed, 0 only when all succeeded. A problem with the call itself (no trained
model, a bad option, a search none of whose queries exists) exits with status 2 and one line on stderr, never a
traceback. Nothing heavy (torch, faiss) is imported before the arguments and the input files were checked, so
--help and mistakes answer at once.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from artsim import __version__
from artsim.app.auth import TOKEN_ENV, serve_token, with_token
from artsim.app.export_command import add_export_parser, run_export
from artsim.app.inputs import must_exist
from artsim.app.limits import ServiceLimits
from artsim.app.plot_words import PLOT_FORMATS, plot_path
from artsim.app.preflight import check_arguments, checked_queries
from artsim.core.errors import UserError
from artsim.index import DEFAULT_SHORTLIST, DEFAULT_TOP_K, RANKING_NAMES

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
    model = OneLineParser(add_help=False)
    model.add_argument("--workspace", type=Path, default=Path("."),
                       help="an artsim workspace after `dvc repro` (default: the current folder)")
    model.add_argument("--model", type=Path, default=None,
                       help="a model folder (models/siamese or a copy of it); default: the workspace's")
    common = OneLineParser(add_help=False, parents=[model])
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    compare = commands.add_parser(
        "compare",
        parents=[common],
        help="score two images (or every pair of a CSV): model, descriptor score and its parts",
    )
    compare.add_argument("a", nargs="?", help="an image (e.g. the generated variant)")
    compare.add_argument("b", nargs="?", help="another image (e.g. the painting)")
    compare.add_argument("--plot", type=plot_path, default=None,
                         help=f"write the picture ({', '.join(PLOT_FORMATS)}: the suffix decides): both images, "
                              "the scores in words, where they differ")
    compare.add_argument(
        "--pairs", type=Path, default=None, help="a CSV with columns a,b: score every pair, write a CSV"
    )
    compare.add_argument("--out", type=Path, default=None, help="with --pairs: write the CSV there (default: stdout)")

    search = commands.add_parser("search", parents=[common], help="the originals most similar to each query image")
    search.add_argument("queries", nargs="*", help="query images")
    search.add_argument(
        "--queries", dest="queries_dir", type=Path, default=None, help="every image in this folder is a query"
    )
    search.add_argument("--queries-file", type=Path, default=None, help="a text file: one query image path per line")
    search.add_argument(
        "--top-k", type=positive_int, default=DEFAULT_TOP_K, help=f"how many results (default {DEFAULT_TOP_K})"
    )
    search.add_argument(
        "--originals",
        type=Path,
        default=None,
        help="a folder of images to search, indexed in the user cache (default: the workspace's ingested originals)",
    )
    search.add_argument("--index", type=Path, default=None, help="an index made by `artsim index DIR --out INDEX`")
    search.add_argument(
        "--by",
        dest="ranking",
        choices=RANKING_NAMES,
        default=None,
        help=(
            "rank by the model, pHash, or both fused "
            "(default: the best on held-out queries, metrics/evaluate/search.json)"
        ),
    )
    search.add_argument(
        "--shortlist",
        type=positive_int,
        default=DEFAULT_SHORTLIST,
        help=f"candidates re-ranked by the model after the embedding-cosine shortlist (default {DEFAULT_SHORTLIST})",
    )
    search.add_argument("--jsonl", action="store_true", help="one JSON line per query")
    search.add_argument("--csv", action="store_true", help="CSV: one row per (query, hit)")

    index = commands.add_parser(
        "index", parents=[common], help="index a folder of images (or a workspace's originals) for search"
    )
    index.add_argument("folder", type=Path, help="a folder of images, or a workspace")
    index.add_argument(
        "--out", type=Path, default=None, help="where the index goes (default: the user cache, where search finds it)"
    )

    serve = commands.add_parser(
        "serve", parents=[model], help="the model and the collection behind a local HTTP API and page"
    )
    serve.add_argument(
        "--index",
        type=Path,
        default=None,
        help="an index made by `artsim index DIR --out INDEX` (default: the workspace's data/index when built "
        "with this model, else its ingested originals, indexed in the user cache)",
    )
    serve.add_argument(
        "--originals", type=Path, default=None, help="a folder of images to search instead, indexed in the user cache"
    )
    serve.add_argument("--host", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK}: this machine only)")
    serve.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    limits = ServiceLimits()
    serve.add_argument("--max-concurrent", type=positive_int, default=limits.max_concurrent,
                       help=f"requests computed at once (default {limits.max_concurrent})")
    serve.add_argument("--max-queue", type=non_negative_int, default=limits.max_queue,
                       help=f"requests waiting beyond those; more get 503 (default {limits.max_queue})")
    serve.add_argument("--token", default=None,
                       help=f"required beyond {LOOPBACK}: clients send it (better: set {TOKEN_ENV})")

    info = commands.add_parser("info", parents=[common], help="what the workspace holds")
    info.add_argument("--no-status", action="store_true", help="skip `dvc status` (stale stages)")
    add_export_parser(commands, OneLineParser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_combinations(parser, args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_arguments(args)  # files and folders, before torch or a model (artsim.app.preflight)
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
    if args.command == "compare" and args.pairs is not None and args.json:
        parser.error("--pairs writes a CSV (one row per pair, its error column): give no --json with it")
    if args.command == "search" and sum([args.json, args.jsonl, args.csv]) > 1:
        parser.error("give one of --json, --jsonl, --csv")


def _fail(message: str) -> int:
    print(f"artsim: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USER_ERROR


def _scorer(args: argparse.Namespace):
    from artsim.app.api import load

    return load(args.model if args.model is not None else args.workspace)


def run_compare(args: argparse.Namespace) -> int:
    if args.pairs is not None:
        return run_compare_pairs(args)
    must_exist([], args)
    from artsim.app.api import UnusableImage, compare_payload, open_image
    from artsim.app.difference import difference_maps, image_label, write_comparison_plot
    from artsim.app.render import compare_error_json, compare_text, print_payload

    names, opened, errors = (args.a, args.b), [], []
    for name in names:
        try:
            opened.append(open_image(name))
        except UnusableImage as exc:
            errors.append(str(exc))
    if errors:  # the pair is compare's one result: printed with its error, and the error on stderr
        payload = compare_error_json(names, "; ".join(errors))
        print_payload(payload, args.json, compare_text(payload))
        return _fail(payload["error"])
    scorer = _scorer(args)
    first, second = opened
    payload = compare_payload(scorer, first, second, names)
    if args.plot is not None:
        maps = difference_maps(first.image, second.image, scorer.descriptor.describe)
        labels = (image_label(Path(args.a), args.workspace), image_label(Path(args.b), args.workspace))
        write_comparison_plot(first.image, second.image, labels, payload, maps, args.plot)
        payload["plot"] = str(args.plot)
    print_payload(payload, args.json, compare_text(payload))
    return 0


def run_compare_pairs(args: argparse.Namespace) -> int:
    must_exist([args.pairs], args)
    from artsim.app.bulk import compare_pairs, read_pairs
    from artsim.app.render import pairs_header, write_pairs

    pairs = read_pairs(args.pairs)
    scorer = _scorer(args)
    # Relative paths in the CSV name files beside it, wherever the command runs.
    rows, head = compare_pairs(scorer, pairs, base=args.pairs.parent), pairs_header(scorer.descriptor.weights.as_dict())
    if args.out is None:
        _, failed = write_pairs(sys.stdout, head, rows)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            _, failed = write_pairs(handle, head, rows)
    return EXIT_USER_ERROR if failed else 0


def run_search(args: argparse.Namespace) -> int:
    queries = checked_queries(args)
    from artsim.app.indexes import decoded_queries, default_ranking, open_index, searcher_for
    from artsim.app.render import threshold_note, write_search_results
    from artsim.index.search import Searcher

    scorer = _scorer(args)
    ranking = args.ranking or default_ranking(scorer)
    opened = open_index(scorer, args.index, args.originals, args.workspace)
    searcher: Searcher = searcher_for(scorer, opened, args.shortlist)
    for path, why in searcher.skipped.items():
        print(f"artsim: skipped candidate {path}: {why}", file=sys.stderr)
    results = searcher.search(decoded_queries(queries), args.top_k, ranking, count=len(queries))
    form = "csv" if args.csv else "jsonl" if args.jsonl else "json" if args.json else "text"
    failed = write_search_results(form, results, searcher.skipped, threshold_note(scorer, ranking))
    return EXIT_USER_ERROR if failed else 0


def run_index(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        raise UserError(f"{args.folder}: not a folder")
    from artsim.app.indexes import collection_at, index_collection
    from artsim.app.render import index_text, print_payload

    scorer = _scorer(args)
    opened = index_collection(scorer, collection_at(args.folder), args.out)
    report = opened.report.as_dict() | {"index": str(opened.folder)}
    print_payload(report, args.json, index_text(report))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from artsim.app.render import info_text, print_payload
    from artsim.app.workspace_info import workspace_info

    if not args.workspace.is_dir():
        raise UserError(f"--workspace {args.workspace}: not a folder")
    info = workspace_info(args.workspace, with_status=not args.no_status)
    print_payload(info, args.json, info_text(info))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    token = serve_token(args.host, args.token)  # beyond the loopback: none, no start (artsim.app.auth)
    import uvicorn

    from artsim.app.serve import create_app
    from artsim.app.service import load_state

    limits = ServiceLimits(max_concurrent=args.max_concurrent, max_queue=args.max_queue)
    state = load_state(args.workspace, args.model, args.index, args.originals)
    health = state.health()
    print(f"artsim: serving {health['index_size']} originals with model {health['model_fingerprint'][:12]} "
          f"on http://{args.host}:{args.port}/ (API: /docs)", file=sys.stderr)
    uvicorn.run(with_token(create_app(state, limits), token), host=args.host, port=args.port, log_level="warning")
    return 0


COMMANDS = {"compare": run_compare, "search": run_search, "index": run_index, "serve": run_serve, "info": run_info,
            "export": run_export}


if __name__ == "__main__":
    sys.exit(main())
