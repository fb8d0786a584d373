"""What glibc keeps resident of freed blocks in evaluate's head loop, and what each remedy costs
(artsim.core.heap, artsim.evaluate.embedding.PAIRS_PER_CALL).

Each configuration runs in a fresh process, one after the other:
- the head: the siamese head (the stage's width) scoring --pairs pairs given by rows of 40,000 embeddings, as
  evaluate's held-out pairs and shortlists are scored (blocks of 8,192): calls of 8,192 pairs without
  give_back_freed_memory() after each block (the code before), of 4,096 and 2,048 with it (as score_embedding_pairs
  now does), and of 2,048 without; figures: the peak and the end of resident memory over the process's before the
  loop, and the time;
- the trunk: a ResNet-50 training step (16 images of 128 px) with glibc's defaults and with its mmap threshold fixed
  at 1 MiB (every large block mapped afresh), the remedy not taken: seconds a step.

    .venv/bin/python bench/heap.py [--pairs 500000] [--steps 4]
Writes bench/results/heap.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import record  # noqa: E402

HEAD = """
import json, resource, sys, time, torch
import stages  # the stage's pinned kernels
from artsim.evaluate import embedding
from artsim.evaluate.embedding import score_embedding_pairs
from artsim.learn.models import DEFAULT_EMBEDDING_DIM, SiameseRegressor
per_call, pairs, give_back = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
if not give_back:  # the code before: what the head freed stays with glibc
    embedding.give_back_freed_memory = lambda: False
def resident():
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20
torch.manual_seed(0)
model = SiameseRegressor(head_hidden=256).eval()
embeddings = torch.nn.functional.normalize(torch.randn(40000, DEFAULT_EMBEDDING_DIM), dim=1)
rows = (torch.randint(0, 40000, (pairs,)), torch.randint(0, 40000, (pairs,)))
start, began, kept = resident(), time.perf_counter(), []
for first in range(0, pairs, 8192):  # evaluate's blocks, each scored a call at a time
    part = slice(first, first + 8192)
    block = (rows[0][part], rows[1][part])
    kept.append(score_embedding_pairs(model, embeddings, embeddings, torch.device('cpu'), per_call, block))
    kept.append([str(i) for i in range(300)])  # what else a block leaves behind (its ids)
seconds = time.perf_counter() - began
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start,
                  "end": resident() - start, "seconds": seconds}))
"""

TRUNK = """
import ctypes, json, sys, time, torch, torchvision
import stages
if sys.argv[1] == "1":
    ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
torch.manual_seed(0)
model = torchvision.models.resnet50(num_classes=10)
optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
images, labels = torch.randn(16, 3, 128, 128), torch.randint(0, 10, (16,))
def step():
    optimiser.zero_grad(); torch.nn.functional.cross_entropy(model(images), labels).backward(); optimiser.step()
step()
began = time.perf_counter()
for _ in range(int(sys.argv[2])):
    step()
print(json.dumps({"seconds": (time.perf_counter() - began) / int(sys.argv[2])}))
"""


def run(script: str, *args: object) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=500_000, help="pairs the head scores in each configuration")
    parser.add_argument("--steps", type=int, default=4, help="training steps timed in each trunk configuration")
    args = parser.parse_args()
    rows = []
    for per_call, give_back in ((8192, False), (4096, True), (2048, False), (2048, True)):
        found = run(HEAD, per_call, args.pairs, int(give_back))
        rows.append([f"head, {per_call:,} pairs a call" + (", freed memory given back" if give_back else ""),
                     f"{found['peak']:.0f}", f"{found['end']:.0f}", f"{found['seconds']:.1f} s"])
        print(rows[-1], file=sys.stderr)
    for fixed in (False, True):
        found = run(TRUNK, int(fixed), args.steps)
        rows.append(["ResNet-50 training step, " + ("mmap threshold fixed at 1 MiB" if fixed else "glibc's defaults"),
                     "", "", f"{found['seconds']:.2f} s a step"])
        print(rows[-1], file=sys.stderr)
    record("heap", ["configuration", "peak MiB over the start", "MiB resident at the end", "time"], rows,
           note=f"{args.pairs:,} pairs, {args.steps} steps; each in a fresh process, in turn")


if __name__ == "__main__":
    main()
