"""The score stage's peak memory at the study's scale, measured rather than extrapolated (issue 28's goal: at most
4 GB). A growth workspace's score inputs (bench/growth.py's: N synthetic originals with 3 variants each, their
manifests and descriptors.parquet) are replicated to --originals (new ids, the same descriptor vectors and splits),
and `python -m stages.score` runs on them in a fresh process with params.yaml's defaults: its peak RSS (ru_maxrss),
CPU and wall time, beside the descriptors' own floats (what its matrices hold). --baseline REV runs REV's code on
the same inputs in the same run, and whether the two wrote the same bytes is shown.

    nice .venv/bin/python bench/score_at_scale.py --source /tmp/growth/n4000-growth/repo --originals 4000 81444 \
        --work /tmp/score-scale --baseline dc61336
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.core import layout  # noqa: E402
from bench.dvc_scale import code_at  # noqa: E402
from bench.results import record  # noqa: E402

INPUTS = (layout.INGESTED / layout.MANIFEST, layout.GENERATED / layout.MANIFEST, layout.DESCRIPTORS_TABLE)


def copy_id(image_id: str, copy: int) -> str:
    return image_id if copy == 0 else f"{image_id}-{copy}"


def replicate(source: Path, target: Path, originals: int) -> dict[str, int]:
    """target/data/...: the source's originals (and their variants and descriptors) repeated under new ids until
    `originals` of them; returns the counts. Written a copy at a time: memory stays that of one copy."""
    ingested = pd.read_parquet(source / INPUTS[0])
    generated = pd.read_parquet(source / INPUTS[1])
    descriptors = pq.ParquetFile(source / INPUTS[2])
    copies = math.ceil(originals / len(ingested))
    kept = set(ingested["id"].astype(str).iloc[: originals - (copies - 1) * len(ingested)])
    for path in INPUTS:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
    frames, variant_frames = [], []
    with pq.ParquetWriter(target / INPUTS[2], descriptors.schema_arrow) as writer:
        for copy in range(copies):
            last = copy == copies - 1
            some = ingested[ingested["id"].isin(kept)] if last else ingested
            ids = set(some["id"].astype(str))
            frames.append(some.assign(id=some["id"].map(lambda i: copy_id(i, copy))))
            variants = generated[generated["original_id"].isin(ids)]
            variant_frames.append(variants.assign(id=variants["id"].map(lambda i: copy_id(i, copy)),
                                                  original_id=variants["original_id"].map(lambda i: copy_id(i, copy))))
            wanted = ids | set(variants["id"].astype(str))
            for group in range(descriptors.num_row_groups):
                table = descriptors.read_row_group(group)
                table = table.filter(pa.compute.is_in(table["id"], pa.array(sorted(wanted))))
                renamed = pa.array([copy_id(i, copy) for i in table["id"].to_pylist()], pa.string())
                writer.write_table(table.set_column(table.schema.get_field_index("id"), "id", renamed))
    pd.concat(frames, ignore_index=True).to_parquet(target / INPUTS[0], index=False)
    pd.concat(variant_frames, ignore_index=True).to_parquet(target / INPUTS[1], index=False)
    return {"originals": sum(map(len, frames)), "variants": sum(map(len, variant_frames))}


def run_score(folder: Path, code: Path) -> dict[str, float]:
    """`python -m stages.score` in folder with code's artsim; its peak RSS, CPU and wall time."""
    shutil.copy(REPO_ROOT / "params.yaml", folder / "params.yaml")
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "stages.score"], cwd=folder, check=True, capture_output=True,
                   env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(code),
                        "OMP_WAIT_POLICY": "PASSIVE", "HOME": str(folder)})
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": time.perf_counter() - started,
            "cpu_s": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime}


def outputs_digest(folder: Path) -> str:
    """One digest of everything the stage wrote (its pairs, scorer, metrics and tables)."""
    digest = hashlib.sha256()
    for path in sorted([*(folder / "data" / "pairs").rglob("*"), *(folder / "metrics").rglob("*")]):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def floats_mib(folder: Path) -> float:
    """What the descriptors' matrices hold: 8 bytes per float of every vector."""
    table = pq.ParquetFile(folder / INPUTS[2])
    lengths = table.read_row_group(0).slice(0, 1).to_pylist()[0]
    per_image = sum(len(v) for v in lengths.values() if isinstance(v, list))
    return table.metadata.num_rows * per_image * 8 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a growth workspace (its repo folder)")
    parser.add_argument("--originals", type=int, nargs="+", default=[81_444])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--baseline", default=None, help="a commit whose code runs too, on the same inputs")
    args = parser.parse_args()
    codes = {"this commit": None, **({f"at {args.baseline}": args.baseline} if args.baseline else {})}
    rows, figures = [], []
    for originals in args.originals:
        folder = args.work / f"n{originals}"
        if not (folder / INPUTS[2]).exists():
            shutil.rmtree(folder, ignore_errors=True)
            counts = replicate(args.source, folder, originals)
        else:
            counts = {"originals": originals, "variants": len(pd.read_parquet(folder / INPUTS[1]))}
        floats = floats_mib(folder)
        for label, revision in codes.items():
            for outputs in (folder / "data" / "pairs", folder / "metrics"):  # each run's digest its own outputs'
                shutil.rmtree(outputs, ignore_errors=True)
            # a child's ru_maxrss is the largest of any child so far: one process per measurement
            measured = json.loads(subprocess.run(
                [sys.executable, __file__, "--measure", str(folder), str(code_at(revision, args.work))],
                check=True, capture_output=True, text=True).stdout)
            digest = outputs_digest(folder)
            first = next((f["outputs"] for f in figures if f["originals"] == counts["originals"]), digest)
            figures.append({**counts, "code": label, "floats_mib": floats, **measured, "outputs": digest})
            rows.append([f"{counts['originals']:,}", f"{counts['variants']:,}", label, f"{floats:.0f}",
                         f"{measured['peak_rss_mib']:.0f}", f"{measured['cpu_s']:.0f}", f"{measured['wall_s']:.0f}",
                         "the same bytes" if digest == first else "DIFFER"])
            print(rows[-1], flush=True)
    source_originals = len(pd.read_parquet(args.source / INPUTS[0]))
    record("score_at_scale", ["originals", "variants", "code", "descriptor floats MiB", "peak RSS MiB", "CPU s",
                              "wall s", "outputs (as the first row of its size)"], rows,
           note=f"the score inputs of a growth workspace of {source_originals:,} originals replicated (same vectors, "
                "new ids); params.yaml's defaults",
           extra={"figures": figures})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(run_score(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        main()
