"""The `artsim` command: compare two images, search the originals, serve both over HTTP, describe a workspace.

A thin layer over artsim.app.api, artsim.app.search, artsim.app.serve and artsim.app.workspace_info. Results go to stdout
(text, or JSON with --json); progress and warnings to stderr. A problem the user can fix
(no trained model, an unusable image, a bad option) exits with status 2 and one line on
stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from artsim import __version__

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

    compare = commands.add_parser("compare", parents=[common], help="score two images: model, descriptor score and its parts")
    compare.add_argument("a", help="an image (e.g. the generated variant)")
    compare.add_argument("b", help="another image (e.g. the painting)")
    compare.add_argument("--plot", type=Path, default=None, help="write a PNG: both images, the scores, where they differ")

    search = commands.add_parser("search", parents=[common], help="the originals most similar to an image")
    search.add_argument("query", help="an image")
    search.add_argument("--top-k", type=positive_int, default=5, help="how many results (default 5)")
    search.add_argument("--originals", type=Path, default=None,
                        help="a folder of images to search (default: the workspace's ingested originals)")
    search.add_argument("--shortlist", type=positive_int, default=None,
                        help="candidates re-ranked by the model after the embedding-cosine shortlist (default 100)")

    serve = commands.add_parser("serve", help="the model and the collection behind a local HTTP API and page")
    serve.add_argument("--workspace", type=Path, default=Path("."), help="an artsim workspace after `dvc repro` (default: the current folder)")
    serve.add_argument("--model", type=Path, default=None, help="a model folder; default: the workspace's")
    serve.add_argument("--index", type=Path, default=None,
                       help="the collection to search: a folder of images (default: the workspace's ingested originals)")
    serve.add_argument("--host", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK}: this machine only)")
    serve.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    serve.add_argument("--max-concurrent", type=positive_int, default=2, help="requests computed at once (default 2)")
    serve.add_argument("--max-queue", type=non_negative_int, default=8, help="requests waiting beyond those; more get 503 (default 8)")

    info = commands.add_parser("info", parents=[common], help="what the workspace holds")
    info.add_argument("--no-status", action="store_true", help="skip `dvc status` (stale stages)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from artsim.app.api import UserError  # torch loads here, after the arguments were checked

    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        return _fail(str(exc))
    except OSError as exc:  # e.g. --plot into a folder that cannot be written
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"artsim: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USER_ERROR


def _scorer(args: argparse.Namespace):
    from artsim.app.api import load

    return load(args.model if args.model is not None else args.workspace)


def _print(payload: Any, as_json: bool, text: str) -> None:
    print(json.dumps(payload, indent=2) if as_json else text)


def run_compare(args: argparse.Namespace) -> int:
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


def run_search(args: argparse.Namespace) -> int:
    from artsim.app.search import DEFAULT_SHORTLIST, folder_candidates, search, workspace_candidates

    scorer = _scorer(args)
    candidates = folder_candidates(args.originals) if args.originals is not None else workspace_candidates(args.workspace)
    found = search(scorer, args.query, candidates, args.top_k, args.shortlist or DEFAULT_SHORTLIST)
    for path, why in found.skipped.items():
        print(f"artsim: skipped candidate {path}: {why}", file=sys.stderr)
    lines = [f"{hit.rank:>4}  {hit.score:.4f}{' *' if hit.likely_derived else '  '}  {hit.artist or '?'} — {hit.title or '?'}  {hit.path}"
             for hit in found.hits]
    legend = found.threshold_note
    _print({"query": args.query, **found.as_dict()}, args.json, "\n".join(["rank  score     artist — title  path", *lines, legend]))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from artsim.app.api import UserError
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
    state = load_state(args.workspace, args.model, args.index)
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


COMMANDS = {"compare": run_compare, "search": run_search, "serve": run_serve, "info": run_info}


if __name__ == "__main__":
    sys.exit(main())
