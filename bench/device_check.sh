#!/usr/bin/env bash
# The GPU check of the project, in one go and under 8 minutes (each part has its own timeout):
#   install     what the project needs, from its own files (requirements.txt, then the package itself);
#               skipped when the interpreter already imports it all (torch, diffusers, faiss, artsim)
#   env         the GPU, torch and CUDA versions
#   cuda_tests  the tests that skip without a CUDA GPU (found by their skip marker under tests/)
#   sdxl_tiny   the generate stage's sdxl backend making variants with a tiny refiner built in code
#   steps       finetune and siamese train steps (and trunk inference) at the study's image size, bf16
#   sdxl_speed  SDXL refiner img2img at 1024 px: the real refiner if on disk (SDXL_MODEL or the HF cache),
#               else the tiny one
# and writes one JSON of every part's figures and status (a part that fails or times out is recorded,
# the others still run).
#
# Usage: bash bench/device_check.sh [--no-cuda] [--skip-install] [OUT.json]
#   OUT.json   default: $OUT/device_check.json when $OUT is set, else bench/results/device_check.json
#   --no-cuda  the CPU-safe parts at toy sizes (the script checked end to end where there is no GPU)
# Environment: PYTHON (default: .venv/bin/python if present, else python3), VENV (where install creates
# one, default .venv), TORCH_INDEX_URL (an extra pip index for the torch wheels), SDXL_MODEL (a refiner folder).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

NO_CUDA=0
SKIP_INSTALL=0
TARGET=""
RUN_PART=""
for arg in "$@"; do
    if [[ "$RUN_PART" == next ]]; then RUN_PART="$arg"; continue; fi
    case "$arg" in
        --part) RUN_PART=next ;;  # internal: run one part's function (what `timeout` can call)
        --no-cuda) NO_CUDA=1 ;;
        --skip-install) SKIP_INSTALL=1 ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "device_check.sh: unknown option $arg (allowed: --no-cuda, --skip-install)" >&2; exit 2 ;;
        *) TARGET="$arg" ;;
    esac
done
if [[ -z "$TARGET" ]]; then
    if [[ -n "${OUT:-}" ]]; then TARGET="$OUT/device_check.json"; else TARGET="$ROOT/bench/results/device_check.json"; fi
fi

VENV="${VENV:-$ROOT/.venv}"
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$VENV/bin/python" ]]; then PY="$VENV/bin/python"
else PY="$(command -v python3)"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 VENV
CPU_FLAG=()
SCALE=1  # the timeouts: on a GPU machine the parts fit 8 minutes; a shared CPU checking the script is slower
if [[ "$NO_CUDA" == 1 ]]; then CPU_FLAG=(--cpu); SCALE=6; fi

# part NAME SECONDS COMMAND...: COMMAND's stdout is the part's figures (NAME.json), its stderr its log.
part() {
    local name="$1" limit=$(($2 * SCALE))
    shift 2
    local started=$SECONDS
    echo "== $name (at most ${limit}s)" >&2
    timeout --kill-after=10 "$limit" "$@" >"$PARTS/$name.json" 2>"$PARTS/$name.log"
    local rc=$?
    echo "$rc $((SECONDS - started))" >"$PARTS/$name.status"
    echo "   rc $rc in $((SECONDS - started))s" >&2
    return 0
}

imports_all() {
    "$PY" -c "import torch, torchvision, diffusers, transformers, faiss, artsim.app.cli" 2>/dev/null
}

install_project() {
    if imports_all; then
        echo '{"installed": false, "why": "already importable"}'
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV" >&2 || return 1
    fi
    PY="$VENV/bin/python"
    local index=()
    if [[ -n "${TORCH_INDEX_URL:-}" ]]; then index=(--extra-index-url "$TORCH_INDEX_URL"); fi
    "$PY" -m pip install -q -r requirements.txt "${index[@]}" >&2 || return 1
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . >&2 || return 1
    echo "{\"installed\": true, \"python\": \"$PY\"}"
}

run_cuda_tests() {
    local files
    mapfile -t files < <(grep -rlE "skipif\(not torch\.cuda\.is_available\(\)" tests/ | sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo '{"files": [], "why": "no test skips without CUDA"}'
        return 1
    fi
    "$PY" -m pytest -q -p no:cacheprovider --junitxml="$PARTS/cuda_tests.xml" "${files[@]}" >&2
    local rc=$?
    "$PY" - "$PARTS/cuda_tests.xml" "${files[@]}" <<'PYTHON'
import json, sys
import xml.etree.ElementTree as ElementTree
suite = ElementTree.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite[0]
counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
print(json.dumps({"files": sys.argv[2:], **counts, "passed": counts["tests"] - counts["failures"]
                  - counts["errors"] - counts["skipped"]}))
PYTHON
    return $rc
}

case "$RUN_PART" in
    "") ;;
    install) install_project; exit ;;
    cuda_tests) run_cuda_tests; exit ;;
    *) echo "device_check.sh: no part $RUN_PART" >&2; exit 2 ;;
esac

PARTS="$(mktemp -d "${TMPDIR:-/tmp}/device-check.XXXXXX")"
export PARTS
if [[ "$SKIP_INSTALL" == 1 ]]; then
    echo "0 0" >"$PARTS/install.status"; echo '{"installed": false, "why": "--skip-install"}' >"$PARTS/install.json"
else
    part install 200 bash "${BASH_SOURCE[0]}" --part install
    if [[ -x "$VENV/bin/python" && -z "${PYTHON:-}" ]]; then PY="$VENV/bin/python"; fi
fi
part env 30 "$PY" bench/device_figures.py env
part cuda_tests 90 env PYTHON="$PY" bash "${BASH_SOURCE[0]}" --part cuda_tests
part sdxl_tiny 45 "$PY" bench/device_figures.py sdxl-tiny "${CPU_FLAG[@]}"
part steps 60 "$PY" bench/device_figures.py steps "${CPU_FLAG[@]}"
part sdxl_speed 45 "$PY" bench/device_figures.py sdxl-speed "${CPU_FLAG[@]}"
"$PY" bench/device_figures.py merge "$PARTS" "$TARGET"
echo "wrote $TARGET" >&2
