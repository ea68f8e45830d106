#!/usr/bin/env bash
# The prepared GPU check (never in CI): bf16 GPT-2 124M, vanilla Trainer vs CurriculumTrainer (plain, LFR, one-run
# DoReMi), interleaved, then torch.compile; prints per-step overhead ratios, tokens/s, peak memory and a markdown
# table for docs/results.md. About 5 minutes on an H200 at the defaults; killed after 480 s.
#
#   benchmarks/gpu_check.sh                 # on a CUDA machine
#   benchmarks/gpu_check.sh --dry-run       # tiny model on CPU in fp32, under a minute (tests/integration/test_gpu_check.py)
#   benchmarks/gpu_check.sh --repeats 2     # any bench_gpu.py option passes through (--help lists them)
#
# Interpreter: $CURRICULA_GPU_CHECK_PYTHON when set (e.g. a machine's own python3 that already has torch,
# transformers, datasets...; the repo root goes on sys.path, nothing needs installing), else .venv/bin/python;
# only when neither exists is .venv created (python3 -m venv .venv && .venv/bin/pip install -q -e .), which needs
# the package index.
# Output: tee'd to $CURRICULA_GPU_CHECK_LOG (default runs/gpu_check.log), every number also in the .json beside it.
# The time limit is $CURRICULA_GPU_CHECK_TIMEOUT seconds (default 480).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n "${CURRICULA_GPU_CHECK_PYTHON:-}" ]]; then
    PY="$CURRICULA_GPU_CHECK_PYTHON"
elif [[ -x .venv/bin/python ]]; then
    PY=.venv/bin/python
else
    echo "gpu_check: no .venv: creating it (python3 -m venv .venv && .venv/bin/pip install -q -e .)"
    python3 -m venv .venv && .venv/bin/pip install -q -e .
    PY=.venv/bin/python
fi

LOG="${CURRICULA_GPU_CHECK_LOG:-runs/gpu_check.log}"
JSON="${LOG%.log}.json"
[[ "$JSON" == "$LOG" ]] && JSON="$LOG.json"
TIMEOUT="${CURRICULA_GPU_CHECK_TIMEOUT:-480}"
mkdir -p "$(dirname "$LOG")"

export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296
export TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1 PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1   # nothing is downloaded

{
    version=$("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1 || true)
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
    echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $PY ($version), timeout ${TIMEOUT} s, git $commit"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi || echo "gpu_check: nvidia-smi failed (status $?)"
    else
        echo "gpu_check: no nvidia-smi on this machine"
    fi
} 2>&1 | tee "$LOG"

set +e
timeout -k 15 "$TIMEOUT" "$PY" benchmarks/bench_gpu.py --json "$JSON" "$@" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
set -e
if [[ "$status" -eq 124 || "$status" -eq 137 ]]; then
    echo "gpu_check: bench_gpu.py stopped after the ${TIMEOUT} s limit (status $status);" \
         "the tables printed so far are in $LOG" | tee -a "$LOG"
elif [[ "$status" -ne 0 ]]; then
    echo "gpu_check: bench_gpu.py failed (status $status); see $LOG" | tee -a "$LOG"
else
    echo "gpu_check: done; log $LOG, numbers $JSON" | tee -a "$LOG"
fi
exit "$status"
