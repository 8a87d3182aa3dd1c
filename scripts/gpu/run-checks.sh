#!/usr/bin/env bash
# Every GPU measurement the README reports, in one run on a machine with an NVIDIA GPU (and,
# for the PyTorch columns, python3 with torch and safetensors). Needs a built dist/ and a quick
# vision zoo (apl-merge zoo build --suite vision --quick --out ZOO).
#
#   scripts/gpu/run-checks.sh ZOO OUT_DIR [MERGE_SIZE_MB]
# Writes OUT_DIR/{scoring.json,scoring.txt,torch-scoring.json,merge.json,merge.txt} and, from the
# command line with --backend auto, an importance artifact and an APL merge's result (OUT_DIR/cli/).
set -uo pipefail
zoo=$1
out=$2
size=${3:-2048}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/card.txt" 2>&1 || true
echo "== scoring: APL importance, WebGPU vs WASM"
timeout 240 node dist/bench/gpu-check.js "$zoo" "$out/scoring.json" 2>&1 | grep -v '^Warning' | tee "$out/scoring.txt"
timeout 120 python3 scripts/gpu/torch-importance.py "$zoo" "$out/torch-scoring.json" 2>&1 | tail -5
echo "== command line: --backend auto on this machine"
mkdir -p "$out/cli"
cat > "$out/cli/apl.yml" <<YAML
merge_method: apl
base_model: $PWD/$zoo/base
models:
  - model: $PWD/$zoo/finetunes/digits
    parameters: {probe: $PWD/$zoo/tasks/digits.safetensors}
  - model: $PWD/$zoo/finetunes/digits_rotated
    parameters: {probe: $PWD/$zoo/tasks/digits_rotated.safetensors}
parameters: {level: row, estimator: exact}
seed: 3
YAML
node bin/apl-merge.js importance --base "$zoo/base" --model "$zoo/finetunes/digits" \
  --probe "$zoo/tasks/digits.safetensors" --backend auto --out "$out/cli/digits-importance" 2>&1 \
  | grep -v '^Warning' | tee "$out/cli/importance.txt"
for backend in auto wasm; do
  node bin/apl-merge.js merge "$out/cli/apl.yml" "$out/cli/merged-$backend" --backend "$backend" --overwrite --json \
    > "$out/cli/merge-$backend.json" 2> >(grep -v '^Warning' >&2)
  grep -E '"(sha256|backend|seconds)"' "$out/cli/merge-$backend.json" | head -4
done
rm -rf "$out"/cli/merged-*
echo "== merging: GPU kernels vs CPU vs PyTorch, ${size} MB per checkpoint"
node dist/bench/gpu-merge.js "$out/merge.json" --size-mb "$size" 2>&1 | grep -v '^Warning' | tee "$out/merge.txt"
