"""Write the documentation's tables from metrics/ and bench/results/, between markers:

    <!-- table:NAME -->
    (generated)
    <!-- /table -->

NAME is a table of artsim.report.tables computed from the committed metrics, bench/<name> for
bench/results/<name>.json, or bench/<name>/<view> for a view of its figures (BENCH_VIEWS) or a part of it (a table
recorded beside it by another run of the bench: tables.bench_parts); a bench
result not measured yet (PENDING) says which command writes it. `python docs/gen_tables.py`
rewrites every page (README.md and docs/); `--check` writes nothing and exits 1 when a page differs from what it would
write. `--exp-show` also runs the `dvc exp show` recipe of docs/pipeline.md and writes its output
between <!-- exp-show --> markers.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from artsim.report import tables

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKED = re.compile(r"(<!-- table:(?P<name>[\w/]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
EXP_SHOW_MARKED = re.compile(r"(<!-- exp-show -->\n)(?P<body>.*?)(<!-- /exp-show -->)", re.DOTALL)
# The recipe docs/pipeline.md shows: the headline's regression and the model's and its peers' retrieval.
EXP_SHOW = ["dvc", "exp", "show", "--no-pager", "--drop",
            r"^(?!(Experiment|mse|r2|(auc|recall_at_1)\.model|recall_at_1\.(phash|fused))$)"]
EXP_SHOW_WIDTH = 120


def _json(path: str) -> dict:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def _csv(path: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / path)


METRICS_TABLES: dict[str, Callable[[], tables.Table]] = {
    "thresholds": lambda: tables.thresholds(_json("metrics/evaluate.json")),
    "peers": lambda: tables.peers(_json("metrics/evaluate.json")),
    "regression": lambda: tables.regression(_json("metrics/evaluate.json"), _json("metrics/score.json"),
                                            _json("metrics/finetune.json")),
    "transformed": lambda: tables.transformed(_csv("metrics/evaluate/transformed.csv")),
    "error_by_strength": lambda: tables.error_by(_csv("metrics/evaluate/error_by_strength.csv"), "strength"),
    "error_by_style": lambda: tables.error_by(_csv("metrics/evaluate/error_by_style.csv"), "style"),
    "descriptor_study": lambda: tables.descriptor_study(_csv("metrics/score/descriptor_study.csv")),
}


# Views of a bench's figures beyond its own table: bench/<name>/<view>.
BENCH_VIEWS: dict[str, Callable[[dict], tables.Table]] = {
    "seeds/recall_at_1": lambda result: tables.seed_spread(result, "recall_at_1"),
    "seeds/pair_auc": lambda result: tables.seed_spread(result, "pair_auc"),
    # Issue 26's goal at collection scale, as gaps: per transform to the floor, pooled to the teacher's.
    "scale_retrieval_500/goal": tables.scale_goal_table,
    "scale_retrieval_2000/goal": tables.scale_goal_table,
    # Issue 28's goal: every stage linear, bounded memory, the study in a day on one 8-GPU node.
    "growth/projection": tables.growth_projection,
}


# Bench results the docs show once measured, and the command that writes each.
PENDING: dict[str, str] = {
    "scale_retrieval_500": "python bench/scale_retrieval.py --n 500",
    "scale_retrieval_2000": "python bench/scale_retrieval.py --n 2000",
}


def table(name: str) -> str:
    """The markdown of table NAME, with the line saying where it comes from."""
    if name.startswith("bench/"):
        bench_name, _, view = name.removeprefix("bench/").partition("/")
        if bench_name in PENDING and not (ROOT / "bench" / "results" / f"{bench_name}.json").is_file():
            return f"*Not measured at this commit: `{PENDING[bench_name]}` writes `bench/results/{bench_name}.json`.*\n"
        where, result = f"bench/results/{bench_name}.json", _json(f"bench/results/{bench_name}.json")
        if view in tables.bench_parts(result):  # a table recorded by another run of the bench, with its own source
            where, result = f"{where}`, `{view}", tables.bench_parts(result)[view]
            rendered = tables.bench(result)
        elif view and f"{bench_name}/{view}" not in BENCH_VIEWS:
            raise SystemExit(f"unknown table {name!r}: the views are bench/{', bench/'.join(BENCH_VIEWS)} "
                             f"and the parts of bench/{bench_name}: {sorted(tables.bench_parts(result))}")
        else:
            rendered = BENCH_VIEWS[f"{bench_name}/{view}"](result) if view else tables.bench(result)
        note = f"Written from `{where}`; measured by: {result['source']}."
        return f"{rendered.markdown()}\n\n*{note}*\n"
    if name not in METRICS_TABLES:
        raise SystemExit(f"unknown table {name!r}: {sorted(METRICS_TABLES)} or bench/<name>")
    return METRICS_TABLES[name]().markdown() + "\n"


def exp_show() -> str:
    shown = subprocess.run(EXP_SHOW, cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "COLUMNS": str(EXP_SHOW_WIDTH)}).stdout
    lines = [line.rstrip() for line in shown.splitlines() if line.strip()]
    return "```\n" + "\n".join(lines) + "\n```\n"


def filled(text: str, with_exp_show: bool = False) -> str:
    text = MARKED.sub(lambda m: m.group(1) + table(m.group("name")) + m.group(4), text)
    if with_exp_show:
        text = EXP_SHOW_MARKED.sub(lambda m: m.group(1) + exp_show() + m.group(3), text)
    return text


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is out of date")
    parser.add_argument("--exp-show", action="store_true", help="also rerun the `dvc exp show` recipe")
    args = parser.parse_args()
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = filled(text, args.exp_show)
        if new != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(new, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python docs/gen_tables.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
