"""`artsim export dataset OUT` and `artsim export image ID OUT`: the workspace's data for people
outside the pipeline (artsim.export does the work; this is the command's parser and output)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from artsim.core.errors import UserError


def add_export_parser(commands: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    export = commands.add_parser("export", help="the workspace's data as a Hugging Face dataset, or one image by id")
    kinds = export.add_subparsers(dest="export_kind", required=True, parser_class=parser_class)
    dataset = kinds.add_parser("dataset", help="originals, variants and pairs as Parquet shards with a dataset card")
    dataset.add_argument("out", type=Path, help="a new folder (or, with --force, an earlier export to replace)")
    image = kinds.add_parser("image", help="one original or variant, as stored, to a file")
    image.add_argument("id", help="its id in the manifests, or its location as search prints it (shard#offset+length)")
    image.add_argument("out", type=Path, help="the file to write")
    for kind in (dataset, image):
        kind.add_argument("--workspace", type=Path, default=Path("."),
                          help="an artsim workspace (default: the current folder)")
        kind.add_argument("--force", action="store_true",
                          help="replace what is at OUT (an earlier export, an image file)")
        kind.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_export(args: argparse.Namespace) -> int:
    from artsim.export import export_dataset, export_image

    if not args.workspace.is_dir():
        raise UserError(f"--workspace {args.workspace}: not a folder")
    if args.export_kind == "image":
        written = export_image(args.workspace, args.id, args.out, force=args.force)
        print(json.dumps({"id": args.id, "out": str(written)}) if args.json else str(written))
        return 0
    report = export_dataset(args.workspace, args.out, force=args.force)
    counts = {name: {split: written.rows for split, written in exported.splits.items()}
              for name, exported in report.configs.items()}
    summary = {"out": str(report.folder), "rows": counts, "left_out": len(report.skipped)}
    text = "\n".join([f"dataset    {report.folder}", *(f"{name:<10} {json.dumps(c)}" for name, c in counts.items()),
                      f"left out   {len(report.skipped)} (see README.md, 'Left out')"])
    print(json.dumps(summary, indent=2) if args.json else text)
    return 0
