"""What `artsim compare --pairs` costs: pairs/s of the bulk path against the single-pair path, in one run.

Pairs of distinct synthetic 512 px paintings (bench/synthetic.py: every image in one pair only, the worst case
for reuse), scored by the model the pipeline ships at params.yaml's sizes (siamese image_size, describe size;
untrained: an untrained model costs what a trained one does):
- bulk: artsim.app.bulk.compare_pairs after the model is loaded (workers decode, describe and embed), its wall
  time and its CPU time (the workers' included: what a loaded machine does not distort much);
- baseline (--baseline REVISION, e.g. main): the same at another commit's artsim, in turn with bulk (--rounds),
  and the largest difference between their scores;
- single: Scorer.score per pair, as `artsim compare a b` scores (decoded, described and embedded per pair);
- cli: `artsim compare --pairs` as a user runs it, process start included;
- start: a fresh process's imports and model load, measured apart (the cli's pairs/s less it is the bulk's);
- per image, one core: decode, descriptors and trunk, what the bulk path spreads over the cores.

Usage (2-core CPU, a few minutes): nice -n 10 .venv/bin/python bench/bulk.py --pairs 200 --baseline main
Writes bench/results/bulk.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dvc_scale import code_at  # noqa: E402
from bench.results import record  # noqa: E402
from bench.synthetic import write_painting  # noqa: E402

SIZE = (512, 512)
START = """
import time
started = time.perf_counter()
import artsim, artsim.app.cli, artsim.app.bulk
imported = time.perf_counter()
artsim.load({folder!r})
print(imported - started, time.perf_counter() - imported)
"""

BULK = """
import json, resource, sys, time
from pathlib import Path
import artsim
from artsim.app.bulk import compare_pairs, read_pairs
scorer, csv_path = artsim.load({folder!r}), Path({csv_path!r})
pairs = read_pairs(csv_path)
def cpu():
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
cpu_before, started = cpu(), time.perf_counter()
rows = list(compare_pairs(scorer, pairs, base=csv_path.parent))
print(json.dumps({{"s": time.perf_counter() - started, "cpu_s": cpu() - cpu_before, "rows": rows}}))
"""


def study_sizes() -> tuple[int, int]:
    """params.yaml's siamese image_size and describe size: what the shipped model embeds and describes at."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return int(params["siamese"]["image_size"]), int(params["describe"]["size"])


def model_folder(work: Path, image_size: int, describe_size: int) -> Path:
    import numpy as np

    from artsim.describe.texture import HARALICK_FEATURES
    from artsim.learn.models import NORMALISATION, SiameseRegressor, save_weights
    from artsim.params import DescribeParams, ScoreWeights
    from artsim.score.scorer import DescriptorScorer
    from artsim.score.similarity import TextureStats

    folder = work / f"model-{image_size}-{describe_size}"
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(SiameseRegressor(head_hidden=64).eval(), folder / "model.safetensors")
    card = {"image_size": image_size, "head_hidden": 64, "normalisation": NORMALISATION}
    (folder / "card.json").write_text(json.dumps(card))
    stats = TextureStats(mean=np.zeros(HARALICK_FEATURES), std=np.ones(HARALICK_FEATURES))
    DescriptorScorer(DescribeParams(size=describe_size), ScoreWeights(), stats).save(folder / "descriptor_score.json")
    return folder


def distinct_pairs(work: Path, count: int) -> Path:
    """A pairs CSV of `count` pairs over 2 x count distinct paintings, beside them."""
    folder = work / "pairs"
    for index in range(2 * count):
        write_painting(folder / f"p{index}.jpg", index, SIZE)
    csv_path = folder / f"pairs-{count}.csv"
    csv_path.write_text("a,b\n" + "".join(f"p{2 * i}.jpg,p{2 * i + 1}.jpg\n" for i in range(count)))
    return csv_path


def seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def process_start(folder: Path) -> tuple[float, float]:
    """(imports, model load) seconds of a fresh process."""
    out = subprocess.run([sys.executable, "-c", START.format(folder=str(folder))], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
    return float(out[0]), float(out[1])


def bulk_run(code: Path, folder: Path, csv_path: Path) -> dict:
    """compare_pairs over the CSV in a fresh process running `code`'s artsim, timed after the model is loaded:
    seconds, CPU seconds (its workers' included) and the rows."""
    command = [sys.executable, "-c", BULK.format(folder=str(folder), csv_path=str(csv_path))]
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=code, env=env)
    return json.loads(out.stdout)


def largest_difference(rows: list[list], others: list[list]) -> float:
    """The largest difference between two runs' scores (their numeric cells), the same rows in the same order."""
    pairs = [(x, y) for row, other in zip(rows, others, strict=True) for x, y in zip(row, other, strict=True)
             if isinstance(x, float) and isinstance(y, float)]
    return max((abs(x - y) for x, y in pairs), default=0.0)


def compare_bulk(folder: Path, csv_path: Path, baseline: Path | None, rounds: int) -> dict[str, dict]:
    """Each code's best of `rounds` runs (baseline and this checkout in turn, so that both see the same load),
    with their CPU time, and how far the baseline's scores are from this checkout's."""
    codes = {"bulk": ROOT, **({"baseline": baseline} if baseline else {})}
    runs: dict[str, list[dict]] = {name: [] for name in codes}
    for _ in range(rounds):
        for name, code in codes.items():
            runs[name].append(bulk_run(code, folder, csv_path))
    best = {name: min(found, key=lambda run: run["s"]) for name, found in runs.items()}
    if baseline:
        best["baseline"]["largest_difference"] = largest_difference(best["bulk"]["rows"], best["baseline"]["rows"])
    return best


def bulk_rows(bulk: dict[str, dict], pairs: int, baseline: str | None) -> list[list[str]]:
    """The table's rows of the bulk path and of its baseline (pairs/s, CPU per pair, how far the scores are)."""
    images = f"{pairs} pairs, {2 * pairs} distinct {SIZE[0]} px images"
    notes = {"bulk": ("bulk (compare_pairs, model loaded)", images),
             "baseline": (f"the same at {baseline} (in turn with it)",
                          f"scores within {bulk.get('baseline', {}).get('largest_difference', 0):.0e} of it")}
    return [[notes[name][0], f"{pairs / run['s']:.1f}",
             f"{notes[name][1]}; {1000 * run['cpu_s'] / pairs:.0f} ms of CPU per pair (workers included)"]
            for name, run in bulk.items()]


def cli_seconds(folder: Path, csv_path: Path, out: Path) -> float:
    command = [sys.executable, "-m", "artsim.app.cli", "compare", "--pairs", str(csv_path), "--model", str(folder),
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return seconds(lambda: subprocess.run(command, check=True, cwd=ROOT, env=env, capture_output=True))


def per_image_ms(scorer, csv_path: Path, images: int = 20) -> dict[str, float]:
    """One core, one image at a time: decode, describe, trunk (ms per image)."""
    import torch

    from artsim.app.api import open_image

    paths = sorted(csv_path.parent.glob("p*.jpg"))[:images]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        decoded = []
        decode = seconds(lambda: decoded.extend(open_image(path) for path in paths))
        describe = seconds(lambda: [scorer.descriptor.describe_image(image.image) for image in decoded])
        embed = seconds(lambda: scorer.embed_loaded(decoded))
    finally:
        torch.set_num_threads(threads)
    return {name: 1000 * value / len(paths) for name, value in
            (("decode", decode), ("describe", describe), ("trunk_batched", embed))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--single", type=int, default=40, help="pairs scored one by one (the single-pair path)")
    parser.add_argument("--baseline", default=None, metavar="REVISION", help="also time this commit's bulk path")
    parser.add_argument("--rounds", type=int, default=2, help="bulk runs of each code, in turn (the best is kept)")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    image_size, describe_size = study_sizes()
    folder = model_folder(work, image_size, describe_size)
    csv_path = distinct_pairs(work, args.pairs)
    imports_s, load_s = process_start(folder)
    cli_s = cli_seconds(folder, csv_path, work / "out.csv")
    bulk = compare_bulk(folder, csv_path, code_at(args.baseline, work) if args.baseline else None, args.rounds)

    import artsim
    from artsim.app.bulk import read_pairs

    scorer = artsim.load(folder)
    pairs = read_pairs(csv_path)
    chosen = pairs[:args.single]
    single_s = seconds(lambda: [scorer.score(csv_path.parent / a, csv_path.parent / b) for a, b in chosen])
    cost = per_image_ms(scorer, csv_path)
    figures = {
        "pairs": len(pairs), "cores": os.cpu_count(), "image_px": SIZE[0], "siamese_image_size": image_size,
        "describe_size": describe_size, "single_pairs_per_s": len(chosen) / single_s,
        "cli_pairs_per_s_with_start": len(pairs) / cli_s, "cli_s": cli_s, "start_imports_s": imports_s,
        "start_model_load_s": load_s, "per_image_ms_one_core": cost,
        # Every image costs its decode, descriptors and trunk on some core: the most the cores can give.
        "ceiling_pairs_per_s": (os.cpu_count() or 1) * 1000 / (2 * sum(cost.values())),
        **{f"{name}_pairs_per_s": len(pairs) / run["s"] for name, run in bulk.items()},
        **{f"{name}_cpu_ms_per_pair": 1000 * run["cpu_s"] / len(pairs) for name, run in bulk.items()},
        "baseline_largest_score_difference": bulk.get("baseline", {}).get("largest_difference"),
    }
    print(json.dumps(figures, indent=1))
    record("bulk", ["path", "pairs/s", "note"], [
        *bulk_rows(bulk, len(pairs), args.baseline),
        ["single pair (Scorer.score per pair)", f"{figures['single_pairs_per_s']:.1f}", f"{len(chosen)} pairs"],
        ["artsim compare --pairs (process start included)", f"{figures['cli_pairs_per_s_with_start']:.1f}",
         f"{cli_s:.1f} s in all"],
        ["process start", "", f"imports {imports_s:.1f} s, model load {load_s:.1f} s"],
        ["per image on one core", f"at most {figures['ceiling_pairs_per_s']:.1f}",
         f"decode {cost['decode']:.1f} ms, descriptors {cost['describe']:.1f} ms, trunk {cost['trunk_batched']:.1f} "
         f"ms (batched); pairs/s: all cores busy with nothing else"],
    ], note=f"siamese image_size {image_size}, describe size {describe_size} (params.yaml); bulk: best of "
            f"{args.rounds}; OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}")


if __name__ == "__main__":
    main()
