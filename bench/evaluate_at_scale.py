"""The parts of evaluate's memory that grow with the collection, measured at the study's scale (issue 28) on
bench/score_at_scale.py's replicated inputs (81,444 originals, their variants, descriptors.parquet and the score
stage's pairs.parquet with their splits). evaluate itself cannot run there on this machine (it embeds every image:
hours); these are its data structures at that size, each built in a fresh process as the stage builds it:

- descriptors: read_descriptors of the whole file, and of the images evaluate scores (described_ids: the collection
  and the test pairs) as the stage now reads it;
- the descriptors of the retrieval's candidates and test queries, taken from those read: copied (as before) or read
  in place (as scorer_inputs takes them);
- the descriptor score's shortlisting proxies of those (--baseline REV's code too);
- held-out pairs: each split's variants with their source and `evaluate.negatives_per_query` unrelated originals
  (params.yaml's), built and then walked a chunk at a time as held_out_scores walks them; the val split's capped to
  `evaluate.calibration_max_queries` variants where the code has that cap (and, for this commit, without it);
- thumbnails: the grey thumbnails (16 KB an image) of the collection and the test variants held as the peer signatures
  hold them, then read by the retrieval's candidates and queries and made SSIM proxies (what SSIM shortlists with).

Each row is peak RSS above the process's RSS once its inputs are loaded (ru_maxrss; MiB). --baseline REV measures the
held-out pairs with REV's code too, on the same inputs, in the same run.

    nice .venv/bin/python bench/evaluate_at_scale.py --source /tmp/score-scale/n81444 --work /tmp/evaluate-scale \
        --baseline ad89c12
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# After PYTHONPATH: a measuring child imports the artsim of the code it was given (a baseline's, or this commit's).
sys.path.append(str(REPO_ROOT))

from bench.dvc_scale import code_at  # noqa: E402
from bench.results import record  # noqa: E402
from bench.score_at_scale import INPUTS  # noqa: E402

PAIRS = Path("data/pairs/pairs.parquet")
SPLITS = ("val", "test")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def measure_descriptors(folder: Path, scored_only: bool) -> dict[str, float]:
    import pandas as pd

    from artsim.describe.table import read_descriptors
    from artsim.evaluate import described_ids

    ids = (described_ids(pd.read_parquet(folder / PAIRS), pd.read_parquet(folder / INPUTS[0]))
           if scored_only else None)
    start = rss_mib()
    images = read_descriptors(folder / INPUTS[2], ids)
    return {"images": len(images), "peak_above_start_mib": peak_mib() - start}


def retrieval_descriptors(folder: Path) -> tuple[Any, list[list[str]]]:
    """The descriptors read, and the ids of the retrieval's test queries and of its candidates that have some. Code
    older than described_ids reads every image's (before a measurement starts: not counted)."""
    import inspect

    import pandas as pd

    from artsim.describe.table import read_descriptors

    pairs, originals = pd.read_parquet(folder / PAIRS), pd.read_parquet(folder / INPUTS[0])
    test = pairs[(pairs["split"] == "test") & pairs["positive"]]
    wanted = [sorted(set(ids.astype(str))) for ids in (test["generated_id"], originals["id"])]
    some = "ids" in inspect.signature(read_descriptors).parameters
    images = (read_descriptors(folder / INPUTS[2], {*wanted[0], *wanted[1]}) if some
              else read_descriptors(folder / INPUTS[2]))
    return images, [[i for i, known in zip(ids, images.described(ids)) if known] for ids in wanted]


def measure_selected(folder: Path, how: str) -> dict[str, float]:
    """The retrieval's candidates' and test queries' descriptors taken from those read: copied, as
    DescriptorSet.select copies them, or read in place (rows_of), as scorer_inputs now takes them."""
    images, wanted = retrieval_descriptors(folder)
    start = rss_mib()
    pick = images.select if how == "copy" else images.rows_of
    held = [pick(ids) for ids in wanted]
    return {"images": sum(len(rows) for rows in held), "peak_above_start_mib": peak_mib() - start}


def measure_proxies(folder: Path) -> dict[str, float]:
    """The descriptor score's shortlisting proxies (shortlists.descriptor_proxy, params.yaml's weights) of the
    retrieval's candidates and test queries, from their descriptors copied out (as every commit can take them)."""
    from artsim.evaluate import shortlists

    images, wanted = retrieval_descriptors(folder)
    queries, candidates = (images.select(ids) for ids in wanted)
    weights = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))["score"]["weights"]
    start = rss_mib()
    made = shortlists.descriptor_proxy(queries, candidates, weights)
    return {"images": sum(len(proxies) for proxies in made), "peak_above_start_mib": peak_mib() - start}


def measure_pairs(folder: Path, split: str, negatives: int | None, calibration_cap: int | None, seed: int
                  ) -> dict[str, float]:
    import pandas as pd

    from artsim.evaluate import calibration_pairs, held_out

    pairs = pd.read_parquet(folder / PAIRS, columns=["original_id", "generated_id", "positive", "split"])
    originals = pd.read_parquet(folder / INPUTS[0], columns=["id", "path"])
    variants = pairs[pairs["split"] == split]
    variants = variants.assign(generated_path=[Path(f"data/generated/{i}.jpg") for i in variants["generated_id"]])
    if split == "val" and calibration_cap and hasattr(calibration_pairs, "calibration_variants"):  # code with the cap
        variants = calibration_pairs.calibration_variants(variants, calibration_cap, seed)
    start = rss_mib()
    built = held_out.held_out_pairs(variants, originals, negatives, seed)
    chunk = built.frame if hasattr(built, "frame") else (lambda first, last: built.iloc[first:last])
    for first in range(0, len(built), held_out.PAIRS_PER_CHUNK):  # as held_out_scores walks them
        chunk(first, first + held_out.PAIRS_PER_CHUNK)
    return {"pairs": len(built), "peak_above_start_mib": peak_mib() - start}


def measure_thumbnails(folder: Path) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    from artsim.evaluate.peers import SSIM_SIZE, PeerSignatures, ssim_proxy

    pairs = pd.read_parquet(folder / PAIRS, columns=["generated_id", "positive", "split"])
    candidates = pd.read_parquet(folder / INPUTS[0], columns=["id"])["id"].astype(str).tolist()
    queries = sorted(set(pairs.loc[(pairs["split"] == "test") & pairs["positive"], "generated_id"].astype(str)))
    paths = [Path(f"{image_id}.jpg") for image_id in [*candidates, *queries]]
    row_of = {path: row for row, path in enumerate(paths)}
    grey = np.random.default_rng(0).integers(0, 256, (len(paths), SSIM_SIZE, SSIM_SIZE), dtype=np.uint8)
    signatures = PeerSignatures(np.zeros(len(paths), np.uint64), np.zeros(len(paths), np.uint64), row_of, grey,
                                row_of, frozenset())
    start = rss_mib()
    held = [(greys, ssim_proxy(greys)) for greys in (signatures.greys(paths[:len(candidates)]),
                                                     signatures.greys(paths[len(candidates):]))]
    return {"images": sum(len(greys) for greys, _ in held), "peak_above_start_mib": peak_mib() - start}


def peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, folder: Path, code: Path, *args: str) -> dict[str, float]:
    """One measurement in a fresh process running `code`'s artsim (its ru_maxrss is its own)."""
    env = {"PYTHONPATH": str(code), "OMP_WAIT_POLICY": "PASSIVE", "PATH": str(Path(sys.executable).parent)}
    completed = subprocess.run([sys.executable, __file__, "--measure", kind, str(folder), *args], check=True,
                               capture_output=True, text=True, env=env)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="bench/score_at_scale.py's folder at one size (required)")
    parser.add_argument("--work", type=Path, help="where a baseline's code is written (required)")
    parser.add_argument("--baseline", default=None, help="a commit whose held-out pairs are measured too")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, folder, *rest = args.measure
        figures = (measure_descriptors(Path(folder), rest == ["scored"]) if kind == "descriptors" else
                   measure_selected(Path(folder), rest[0]) if kind == "selected" else
                   measure_proxies(Path(folder)) if kind == "proxies" else
                   measure_thumbnails(Path(folder)) if kind == "thumbnails" else
                   measure_pairs(Path(folder), rest[0], *(None if v == "null" else int(v) for v in rest[1:])))
        print(json.dumps(figures))
        return
    if args.source is None or args.work is None:
        parser.error("--source and --work are required")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    negatives, cap = params["evaluate"]["negatives_per_query"], params["evaluate"]["calibration_max_queries"]
    settings = ["null" if value is None else str(value) for value in (negatives, cap, params["seed"])]
    codes = {"this commit": None, **({f"at {args.baseline}": args.baseline} if args.baseline else {})}
    rows: list[list[str]] = []

    def add(structure: str, label: str, figures: dict[str, float], counted: str = "images") -> None:
        rows.append([structure, label, f"{figures[counted]:,}", f"{figures['peak_above_start_mib']:.0f}"])
        print(rows[-1], flush=True)

    for what, label in (("whole", "every image (as before)"), ("scored", "described_ids (as the stage reads)")):
        add("descriptors", label, child("descriptors", args.source, REPO_ROOT, what))
    for how, label in (("copy", "copied (select), as before"), ("in-place", "read in place (rows_of), as the stage")):
        add("descriptors of the candidates and test queries", label, child("selected", args.source, REPO_ROOT, how))
    for label, revision in codes.items():
        add("descriptor proxies, candidates and test queries", label,
            child("proxies", args.source, code_at(revision, args.work)))
    for split in SPLITS:
        runs = [(label, revision, settings) for label, revision in codes.items()]
        if split == "val":  # the cap apart from the row numbers
            runs.insert(1, ("this commit, no calibration cap", None, [settings[0], "null", settings[2]]))
        for label, revision, these in runs:
            add(f"held-out pairs, {split}", label,
                child("pairs", args.source, code_at(revision, args.work), split, *these), counted="pairs")
    for label, revision in codes.items():
        add("thumbnails and SSIM proxies, candidates and test queries", label,
            child("thumbnails", args.source, code_at(revision, args.work)))
    record("evaluate_at_scale", ["structure", "read or built by", "images or pairs", "peak MiB above its inputs"],
           rows, note=f"inputs: {args.source.name} (bench/score_at_scale.py); negatives_per_query {negatives}, "
                      f"calibration_max_queries {cap}")


if __name__ == "__main__":
    main()
