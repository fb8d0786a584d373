"""A bounded load test of `artsim serve` on the loopback (docs/using.md). Writes bench/results/serve.json.

Starts `artsim serve` as its own process (a real uvicorn) on an index, then sends --requests requests
to POST /compare and as many to POST /search, --concurrency at a time, and stops: latency p50/p95,
throughput, the statuses, and the server's resident memory after a warm-up and after the run
(no growth per request: the two should be equal, give or take the allocator). The baseline, in
the same run: the same work in this process, one request at a time, without HTTP (decode +
compare_payload; decode + the service's search over the same index), whose throughput the
served one is reported against.

Without --workspace/--model: an untrained model at the siamese defaults (image size, head). Without
--index/--workspace: the scale corpus of bench/dvc_scale.py (--originals paintings, built once under
the temporary folder), indexed with `artsim index --out` (timed); the queries are its `import`
variants (derived copies, shrunk and re-encoded as an uploader sends them).

Usage: .venv/bin/python bench/serve.py [--workspace DIR | --model DIR --index INDEX] [--originals 2000]
                                       [--requests 500] [--concurrency 4]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from PIL import Image

import artsim
from artsim.app.api import LoadedImage, compare_payload
from artsim.app.indexes import open_index
from artsim.app.service import ServiceState
from artsim.core.images import load_rgb
from artsim.params import SiameseParams
from bench.dvc_scale import build_dataset
from bench.results import record
from tests.support.helpers import write_untrained_model

SCRATCH = Path(tempfile.gettempdir()) / "artsim-bench-serve"
WARM_UP = 20
QUERIES = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scale_corpus(count: int, side: int) -> tuple[Path, Path]:
    """bench/dvc_scale.py's synthetic WikiArt-shaped originals (source/) and their variants (import/)."""
    return build_dataset(SCRATCH / f"scale-{count}-{side}", count, side)


def build_index(args: argparse.Namespace, source: Path, cache: Path) -> tuple[Path, float]:
    """`artsim index SOURCE --out INDEX` with the served model; its wall time (0 when already built)."""
    out = SCRATCH / f"index-{source.parent.name}-{artsim.load(args.model).fingerprint[:12]}"
    if (out / "manifest.json").is_file():
        return out, 0.0
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "artsim.app.cli", "index", str(source), "--out", str(out), "--model", str(args.model)],
        check=True,
        env={**os.environ, "ARTSIM_CACHE": str(cache)},
    )
    return out, round(time.perf_counter() - start, 1)


def query_images(imported: Path | None) -> list[bytes]:
    """Derived copies (shrunk, re-encoded): the corpus's variants, else synthetic paintings' own."""
    sources = sorted(imported.rglob("*.jpg"))[:QUERIES] if imported else []
    images = []
    for index in range(QUERIES):
        image = (
            Image.open(sources[index]) if sources else Image.new("RGB", (512, 384), (index * 30, 90, 200 - index * 20))
        )
        buffer = io.BytesIO()
        image.convert("RGB").resize((400, 300)).save(buffer, format="JPEG", quality=80)
        images.append(buffer.getvalue())
    return images


def start_server(args: argparse.Namespace, port: int, cache: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "artsim.app.cli", "serve", "--port", str(port),
               "--max-concurrent", str(args.concurrency), "--max-queue", str(4 * args.concurrency)]
    if args.workspace:
        command += ["--workspace", str(args.workspace)]
    if args.model:
        command += ["--model", str(args.model)]
    if args.index:
        command += ["--index", str(args.index)]
    server = subprocess.Popen(command, env={**os.environ, "ARTSIM_CACHE": str(cache)})
    deadline = time.monotonic() + args.startup_timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"artsim serve exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    sys.exit(f"artsim serve did not answer /health within {args.startup_timeout} s")


def load(client: httpx.Client, route: str, files_of, count: int, concurrency: int, data: dict | None = None) -> dict:
    """`count` requests, `concurrency` at a time; latency of each, the statuses, the throughput."""
    def one(index: int) -> tuple[float, int]:
        start = time.perf_counter()
        status = client.post(route, files=files_of(index), data=data).status_code
        return time.perf_counter() - start, status

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - start
    latencies = sorted(seconds for seconds, _ in outcomes)
    statuses: dict[int, int] = {}
    for _, status in outcomes:
        statuses[status] = statuses.get(status, 0) + 1
    return {"requests": count, "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
            "throughput_rps": round(count / elapsed, 1), "statuses": statuses}


def in_process_ms(args: argparse.Namespace, queries: list[bytes], cache: Path, repeats: int = 40) -> dict[str, float]:
    """Median ms of one compare and one search without HTTP, one at a time: the floor."""
    os.environ["ARTSIM_CACHE"] = str(cache)
    workspace = args.workspace or Path(".")
    scorer = artsim.load(args.model if args.model is not None else workspace)
    state = ServiceState(scorer, open_index(scorer, args.index, None, workspace))

    def decoded(index: int) -> LoadedImage:
        return LoadedImage("q", load_rgb(queries[index % len(queries)]))

    def median_ms(work) -> float:
        times = []
        for index in range(repeats):
            start = time.perf_counter()
            work(index)
            times.append(time.perf_counter() - start)
        return round(1000 * statistics.median(times), 1)

    return {"compare": median_ms(lambda i: compare_payload(scorer, decoded(i), decoded(i + 1))),
            "search": median_ms(lambda i: state.search(decoded(i), 5, args.by))}


def rss_mib(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--index", type=Path, default=None, help="an index made by `artsim index DIR --out INDEX`")
    parser.add_argument(
        "--originals", type=int, default=2000, help="scale-corpus originals when no --index/--workspace"
    )
    parser.add_argument("--side", type=int, default=384, help="long side of the scale corpus's paintings")
    parser.add_argument(
        "--by", choices=("model", "phash", "fused"), default="model", help="the ranking POST /search asks for"
    )
    parser.add_argument("--requests", type=int, default=500, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--startup-timeout", type=float, default=600)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="artsim-bench-serve-"))
    if args.workspace is None and args.model is None:
        defaults = SiameseParams.model_fields
        args.model = write_untrained_model(
            SCRATCH / "model", defaults["image_size"].default, defaults["head_hidden"].default
        )
    imported, index_seconds = None, None
    if args.workspace is None and args.index is None:
        source, imported = scale_corpus(args.originals, args.side)
        args.index, index_seconds = build_index(args, source, scratch / "cache")
    queries = query_images(imported)
    port = free_port()
    server = start_server(args, port, scratch / "cache")
    try:
        process = psutil.Process(server.pid)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120, limits=httpx.Limits(max_connections=args.concurrency)) as client:
            health = client.get("/health").json()

            def pair(index: int) -> dict:
                return {
                    "a": ("a.jpg", queries[index % 8], "image/jpeg"),
                    "b": ("b.jpg", queries[(index + 1) % 8], "image/jpeg"),
                }

            def image(index: int) -> dict:
                return {"image": ("q.jpg", queries[index % 8], "image/jpeg")}

            load(client, "/compare", pair, WARM_UP, args.concurrency)
            load(client, "/search", image, WARM_UP, args.concurrency, {"by": args.by})
            before = rss_mib(process)
            compare = load(client, "/compare", pair, args.requests, args.concurrency)
            search = load(client, "/search", image, args.requests, args.concurrency, {"by": args.by})
            after = rss_mib(process)
    finally:
        server.terminate()
        server.wait(30)
    floor = in_process_ms(args, queries, scratch / "cache")
    for name, served in (("compare", compare), ("search", search)):
        served["in_process_ms"] = floor[name]
        served["throughput_vs_in_process"] = round(served["throughput_rps"] * floor[name] / 1000, 2)
    print(
        json.dumps(
            {
                "index_size": health["index_size"],
                "index_build_s": index_seconds,
                "by": args.by,
                "concurrency": args.concurrency,
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "compare": compare,
                "search": search,
                "rss_mib": {"after_warm_up": before, "after_run": after, "growth": round(after - before, 1)},
            },
            indent=2,
        )
    )
    columns = (f"{args.requests} requests, {args.concurrency} at a time", *SERVE_COLUMNS)
    record(f"serve_{args.by}" if args.by != "model" else "serve", columns, [
        served_row("`POST /compare` (two JPEGs)", compare),
        served_row(f"`POST /search` (top 5 of {health['index_size']:,}, `by={args.by}`)", search)],
        note=f"RSS {before:.0f} MiB after the warm-up, {after:.0f} MiB after the run")


SERVE_COLUMNS = ("p50", "p95", "throughput", "in-process, one at a time (baseline, same run)")


def served_row(what: str, served: dict) -> list[str]:
    floor = served["in_process_ms"]
    return [what, f"{served['p50_ms']:.0f} ms", f"{served['p95_ms']:.0f} ms", f"{served['throughput_rps']:.1f} req/s",
            f"{floor:.0f} ms ({1000 / floor:.0f} req/s): served {served['throughput_vs_in_process']:.2f}×"]


if __name__ == "__main__":
    main()
