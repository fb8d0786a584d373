"""What `artsim compare --pairs` costs: pairs/s of the bulk path against the single-pair path, in one run.

Pairs of distinct synthetic 512 px paintings (bench/synthetic.py: every image in one pair only, the worst case
for reuse), scored by the model the pipeline ships at params.yaml's sizes (siamese image_size, describe size;
untrained: an untrained model costs what a trained one does):
- bulk: artsim.app.bulk.compare_pairs in this process (workers decode and describe, the trunk batched);
- single: Scorer.score per pair, as `artsim compare a b` scores (decoded, described and embedded per pair);
- cli: `artsim compare --pairs` as a user runs it, process start included;
- start: a fresh process's imports and model load, measured apart (the cli's pairs/s less it is the bulk's);
- per image, one core: decode, descriptors and trunk, what the bulk path spreads over the cores.

Usage (2-core CPU, a few minutes): nice -n 10 .venv/bin/python bench/bulk.py --pairs 200
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
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    image_size, describe_size = study_sizes()
    folder = model_folder(work, image_size, describe_size)
    csv_path = distinct_pairs(work, args.pairs)
    imports_s, load_s = process_start(folder)
    cli_s = cli_seconds(folder, csv_path, work / "out.csv")

    import artsim
    from artsim.app.bulk import compare_pairs, read_pairs

    scorer = artsim.load(folder)
    pairs = read_pairs(csv_path)
    bulk_s = seconds(lambda: list(compare_pairs(scorer, pairs, base=csv_path.parent)))
    chosen = pairs[:args.single]
    single_s = seconds(lambda: [scorer.score(csv_path.parent / a, csv_path.parent / b) for a, b in chosen])
    figures = {
        "pairs": len(pairs), "cores": os.cpu_count(), "image_px": SIZE[0], "siamese_image_size": image_size,
        "describe_size": describe_size, "bulk_pairs_per_s": len(pairs) / bulk_s,
        "single_pairs_per_s": len(chosen) / single_s, "cli_pairs_per_s_with_start": len(pairs) / cli_s,
        "cli_s": cli_s, "start_imports_s": imports_s, "start_model_load_s": load_s,
        "per_image_ms_one_core": per_image_ms(scorer, csv_path),
    }
    print(json.dumps(figures, indent=1))
    cost = figures["per_image_ms_one_core"]
    record("bulk", ["path", "pairs/s", "note"], [
        ["bulk (compare_pairs, in process)", f"{figures['bulk_pairs_per_s']:.1f}",
         f"{len(pairs)} pairs, {2 * len(pairs)} distinct {SIZE[0]} px images"],
        ["single pair (Scorer.score per pair)", f"{figures['single_pairs_per_s']:.1f}", f"{len(chosen)} pairs"],
        ["artsim compare --pairs (process start included)", f"{figures['cli_pairs_per_s_with_start']:.1f}",
         f"{cli_s:.1f} s in all"],
        ["process start", "", f"imports {imports_s:.1f} s, model load {load_s:.1f} s"],
        ["per image on one core", "", f"decode {cost['decode']:.1f} ms, descriptors {cost['describe']:.1f} ms, "
                                      f"trunk {cost['trunk_batched']:.1f} ms (batched)"],
    ], note=f"siamese image_size {image_size}, describe size {describe_size} (params.yaml)")


if __name__ == "__main__":
    main()
