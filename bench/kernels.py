"""Which kernel levers change the pipeline's bits, whether artsim.core.kernels pins them, and what the pins cost.

Each row stands in for another machine: this machine as it is, with one core (`taskset`: the
libraries size their thread pools by the cores they may use), or with one library's kernel
choice moved the way another CPU moves it (ATen's vector kernels, oneDNN's convolutions, MKL's
code path, numpy's and OpenCV's dispatch, OpenBLAS's core). A row runs, in a fresh process,
three pieces of the stages' own computation:

    siamese    two training steps of the siamese ResNet-50 (forward, backward, Adam), 64 px
    style      the style_transfer backend rendering two sample paintings (onnxruntime)
    describe   the classical descriptors of three sample paintings (numpy, OpenCV, mahotas)

once as the user's opt-out leaves it (ARTSIM_NATIVE_KERNELS=1: native) and once through
`import stages` (pinned), and prints whether each result's bits equal this machine's, and
the seconds each took. The row "this machine" gives the cost of the pins: pinned / native.

This machine cannot show AVX-512 kernels; a row that lowers a lever shows that the library
reads it, and that the pins set it whatever the machine or the environment chose.

Usage (about 10 minutes on 2 busy cores):
    .venv/bin/python bench/kernels.py [--rows "this machine,1 core,..."] [--markdown docs/reproducibility.md]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO_ROOT / "data" / "sample").rglob("*.jpg"))[:3]
WORKLOADS = ("siamese", "style", "describe")
MARK_BEGIN, MARK_END = "<!-- bench/kernels.py: begin -->", "<!-- bench/kernels.py: end -->"

# Row name -> (environment it adds, runs on one core).
ROWS: dict[str, tuple[dict[str, str], bool]] = {
    "this machine": ({}, False),
    "1 core": ({}, True),
    "ATen default (no AVX2)": ({"ATEN_CPU_CAPABILITY": "default"}, False),
    "oneDNN SSE4.1": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, False),
    "MKL AVX2 branch": ({"MKL_CBWR": "AVX2"}, False),
    "MKL SSE4.2 only": ({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, False),
    "numpy without AVX2": ({"NPY_DISABLE_CPU_FEATURES": "X86_V3"}, False),
    "OpenBLAS Sandybridge": ({"OPENBLAS_CORETYPE": "Sandybridge"}, False),
    "OpenCV without AVX2": ({"OPENCV_CPU_DISABLE": "AVX2,FP16,AVX512_SKX"}, False),
}


def _digest(chunks: list[bytes]) -> str:
    return hashlib.sha256(b"".join(chunks)).hexdigest()[:12]


def siamese_steps() -> str:
    import torch

    from artsim.learn.models import SiameseRegressor
    from artsim.learn.training import make_deterministic

    make_deterministic(0)
    model = SiameseRegressor(head_hidden=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    a, b, target = torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64), torch.rand(4)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(a, b).flatten(), target).backward()
        optimizer.step()
    return _digest([tensor.detach().numpy().tobytes() for tensor in model.state_dict().values()])


def style_transfer() -> str:
    from artsim.core.images import load_rgb
    from artsim.generate.backends.style_transfer import StyleTransferBackend

    backend = StyleTransferBackend({}, max_side=160)
    images = [load_rgb(path.read_bytes()) for path in SAMPLES[:2]]
    rendered = [backend.stylize(images[0], images[1], 0.6), backend.stylize(images[1], images[0], 1.0)]
    return _digest([image.tobytes() for image in rendered])


def describe() -> str:
    from artsim.describe.run import describe_entry
    from artsim.describe.table import ImageEntry
    from artsim.params import DescribeParams

    params = DescribeParams(cache=None)
    chunks = []
    for path in SAMPLES:
        outcome = describe_entry(ImageEntry(id=path.stem, role="original", path=path), params, None)
        chunks += [vector.tobytes() for vector in outcome.result.vectors.values()]
    return _digest(chunks)


def child(pinned: bool) -> None:
    """One row's run: prints {workload: [digest, seconds]} as JSON."""
    if pinned:
        import stages  # noqa: F401  (pins the kernels, as every stage does, before torch is imported)
    import torch  # the libraries load here, after the pins, as in a stage

    results = {"threads": torch.get_num_threads(), "aten": torch.backends.cpu.get_cpu_capability()}
    for name, work in zip(WORKLOADS, (siamese_steps, style_transfer, describe)):
        start = time.perf_counter()
        results[name] = [work(), round(time.perf_counter() - start, 2)]
    print(json.dumps(results))


def run_row(extra: dict[str, str], one_core: bool, pinned: bool) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(extra, PYTHONPATH=str(REPO_ROOT))
    env["ARTSIM_NATIVE_KERNELS"] = "0" if pinned else "1"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "pinned" if pinned else "native"]
    if one_core:
        command = [shutil.which("taskset") or "taskset", "-c", "0", *command]
    out = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def mark(result: dict, reference: dict, name: str) -> str:
    return "same" if result[name][0] == reference[name][0] else "DIFF"


def table(results: dict[str, dict], names: list[str]) -> list[str]:
    """Markdown: per row, whether each workload's bits equal the first row's, native / pinned."""
    reference = results[names[0]]
    lines = ["| machine stood in for | threads native/pinned | " + " | ".join(WORKLOADS) + " |",
             "|---|---|" + "---|" * len(WORKLOADS)]
    for name in names:
        row = results[name]
        cells = [f"{mark(row['native'], reference['native'], w)} / {mark(row['pinned'], reference['pinned'], w)}"
                 for w in WORKLOADS]
        threads = f"{row['native']['threads']} / {row['pinned']['threads']}"
        lines.append(f"| {name} | {threads} | " + " | ".join(cells) + " |")
    return lines


def costs(results: dict[str, dict], names: list[str]) -> list[str]:
    """Markdown: seconds native and pinned, and their ratio, on the first row (and the one-core row)."""
    lines = ["| machine | " + " | ".join(f"{w} native -> pinned" for w in WORKLOADS) + " |",
             "|---|" + "---|" * len(WORKLOADS)]
    for name in [n for n in names if n in (names[0], "1 core")]:
        row = results[name]
        seconds = [(row["native"][w][1], row["pinned"][w][1]) for w in WORKLOADS]
        lines.append(f"| {name} | " + " | ".join(f"{native:.1f} s -> {pinned:.1f} s ({pinned / native:.2f}x)"
                                                 for native, pinned in seconds) + " |")
    return lines


def write_between_markers(path: Path, lines: list[str]) -> None:
    """Replace what lies between MARK_BEGIN and MARK_END in `path` (a generated block of the docs)."""
    text = path.read_text(encoding="utf-8")
    if MARK_BEGIN not in text or MARK_END not in text:
        sys.exit(f"--markdown: {path} has no {MARK_BEGIN} ... {MARK_END} block")
    head, rest = text.split(MARK_BEGIN, 1)
    path.write_text(head + MARK_BEGIN + "\n" + "\n".join(lines) + "\n" + MARK_END + rest.split(MARK_END, 1)[1],
                    encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=("native", "pinned"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows, the first is the reference")
    parser.add_argument("--markdown", type=Path, help="also write the tables into this page's generated block")
    args = parser.parse_args()
    if args.child:
        return child(args.child == "pinned")
    names = args.rows.split(",")
    if unknown := set(names) - set(ROWS):
        sys.exit(f"--rows: unknown {sorted(unknown)}; known: {', '.join(ROWS)}")
    results = {name: {mode: run_row(*ROWS[name], mode == "pinned") for mode in ("native", "pinned")} for name in names}
    reference = results[names[0]]
    lines = [f"Bits of each result against {names[0]!r}'s, native (ARTSIM_NATIVE_KERNELS=1) / pinned (as every "
             f"stage runs); pinned against native on {names[0]!r}: "
             + ", ".join(f"{w} {mark(reference['pinned'], reference['native'], w)}" for w in WORKLOADS) + ".",
             "", *table(results, names), "", "Seconds, native -> pinned (pinned / native):", "", *costs(results, names)]
    print("\n".join(lines))
    if args.markdown:
        write_between_markers(args.markdown, lines)


if __name__ == "__main__":
    main()
