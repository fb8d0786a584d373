"""`artsim export dataset` throughput and memory on a synthetic workspace.

- throughput: rows/s and MB/s of image bytes written, originals and variants together.
- memory: peak RSS of exporting `--count` originals (and `--variants` variants each) against
  `--small` originals, each in a fresh process; target: within 1.3x (the export streams one row
  group of images at a time, so the collection's size must not show in the peak).

Usage: nice .venv/bin/python bench/export.py [--count 20000] [--small 1000] [--variants 2] [--side 512]
The workspace is synthetic: 32 distinct paintings packed under many ids into real tar shards
(core.shards) with manifests as ingest and generate write them; it lives under --data
(default /tmp/artsim-bench-export) and is rebuilt per size.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.core import layout  # noqa: E402
from artsim.core.shards import SHARD_FOLDER, ShardWriter, bucket  # noqa: E402
from bench.synthetic import write_painting  # noqa: E402

DISTINCT = 32
SPLITS = ("train", "train", "train", "train", "val", "test")


def _jpegs(folder: Path, side: int) -> list[bytes]:
    paths = [folder / f"p{i}.jpg" for i in range(DISTINCT)]
    for i, path in enumerate(paths):
        write_painting(path, i, (side, side * 3 // 4))
    return [path.read_bytes() for path in paths]


def _pack(folder: Path, rows: list[dict], images: list[bytes]) -> None:
    with ShardWriter(folder / SHARD_FOLDER) as shards:
        for n, row in enumerate(rows):
            row["path"] = f"images/{row['id']}.jpg"
            location = shards.add(row["path"], images[n % DISTINCT], bucket(row["id"]))
            row["shard"], row["offset"], row["length"] = location
    pd.DataFrame(rows).to_parquet(folder / layout.MANIFEST)


def build_workspace(root: Path, count: int, variants: int, side: int) -> Path:
    shutil.rmtree(root / "ws", ignore_errors=True)
    workspace = root / "ws"
    images = _jpegs(root / "paintings", side)
    (workspace / layout.INGESTED).mkdir(parents=True)
    (workspace / layout.GENERATED).mkdir(parents=True)
    originals = [{"id": f"o{i:07d}", "source_path": f"S/o{i}.jpg", "artist": "a", "title": "t", "year": "1900",
                  "style": "S", "genre": "g", "split": SPLITS[i % len(SPLITS)], "width": side, "height": side * 3 // 4}
                 for i in range(count)]
    _pack(workspace / layout.INGESTED, originals, images)
    made = [{"id": f"v{i:07d}-{k}", "original_id": f"o{i:07d}", "strength": 0.25 * (k + 1), "backend": "bench",
             "model": "synthetic", "seed": 0} for i in range(count) for k in range(variants)]
    _pack(workspace / layout.GENERATED, made, images[1:] + images[:1])
    return workspace


def run_export(workspace: Path, out: Path) -> dict:
    from artsim.export import export_dataset

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = export_dataset(workspace, out)
    seconds = time.perf_counter() - start
    rows = sum(report.configs[name].count() for name in ("originals", "variants"))
    written = sum(w.bytes for name in ("originals", "variants") for w in report.configs[name].splits.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "mb_per_s": written / 1e6 / seconds,
            "written_mb": written / 1e6, "peak_mib": peak}


def export_in_fresh_process(workspace: Path, out: Path) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from bench.export import run_export; "
            f"from pathlib import Path; print(json.dumps(run_export(Path({str(workspace)!r}), Path({str(out)!r}))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--data", type=Path, default=Path("/tmp/artsim-bench-export"))
    args = parser.parse_args()
    results = {}
    for label, count in (("small", args.small), ("big", args.count)):
        workspace = build_workspace(args.data / label, count, args.variants, args.side)
        results[label] = export_in_fresh_process(workspace, args.data / label / "out")
        shutil.rmtree(args.data / label, ignore_errors=True)
    for label, result in results.items():
        print(f"{label:>5}: {result['rows']} rows, {result['written_mb']:.0f} MB in {result['seconds']:.1f} s "
              f"({result['rows_per_s']:.0f} rows/s, {result['mb_per_s']:.0f} MB/s), "
              f"peak RSS {result['peak_mib']:.0f} MiB")
    ratio = results["big"]["peak_mib"] / results["small"]["peak_mib"]
    volume = results["big"]["written_mb"] / results["small"]["written_mb"]
    print(f"peak RSS ratio big/small: {ratio:.2f} (target <= 1.3) for {volume:.0f}x the image bytes")


if __name__ == "__main__":
    main()
