#!/usr/bin/env bash
# Every GPU measurement the README reports, in one run on a machine with an NVIDIA GPU (and,
# for the PyTorch columns, python3 with torch and safetensors). Needs a built dist/ and a quick
# vision zoo (apl-merge zoo build --suite vision --quick --out ZOO).
#
#   scripts/gpu/run-checks.sh ZOO OUT_DIR [MERGE_SIZE_MB]
# Writes OUT_DIR/{scoring.json,scoring.txt,torch-scoring.json,merge.json,merge.txt}.
set -uo pipefail
zoo=$1
out=$2
size=${3:-2048}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/card.txt" 2>&1 || true
echo "== scoring: APL importance, WebGPU vs WASM"
node dist/bench/gpu-check.js "$zoo" "$out/scoring.json" 2>&1 | grep -v '^Warning' | tee "$out/scoring.txt"
python3 scripts/gpu/torch-importance.py "$zoo" "$out/torch-scoring.json" 2>&1 | tail -5
echo "== merging: GPU kernels vs CPU vs PyTorch, ${size} MB per checkpoint"
node dist/bench/gpu-merge.js "$out/merge.json" --size-mb "$size" 2>&1 | grep -v '^Warning' | tee "$out/merge.txt"
