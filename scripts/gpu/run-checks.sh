#!/usr/bin/env bash
# Every GPU measurement the README reports, in one run on a machine with an NVIDIA GPU (and,
# for the PyTorch columns, python3 with torch and safetensors). Needs a built dist/ and a quick
# vision zoo (apl-merge zoo build --suite vision --quick --out ZOO).
#
#   scripts/gpu/run-checks.sh ZOO OUT_DIR [MERGE_SIZE_MB]
# Prints every table and writes few files (whoever fetches them may take only a handful):
# OUT_DIR/{card.txt,scoring.json,scoring-wide.json,torch-scoring.json,torch-scoring-wide.json,cli.txt,
# diff.json,merge.json}.
set -uo pipefail
zoo=$1
out=$2
size=${3:-512}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/card.txt" 2>&1 || true
quiet() { grep -v '^Warning'; }

echo "== scoring: APL importance, WebGPU vs WASM (trained quick zoo)"
timeout 240 node dist/bench/gpu-check.js "$zoo" "$out/scoring.json" 2>&1 | quiet
python3 scripts/gpu/float64-scores.py "$zoo" "$out/scoring.json" 2>&1 | tail -8
timeout 120 python3 scripts/gpu/torch-importance.py "$zoo" "$out/torch-scoring.json" 2>&1 | tail -5

echo "== scoring: the same on wide untrained MLPs (784→1024→1024, 512 probe examples)"
wide=$(mktemp -d)
node dist/bench/wide-zoo.js "$wide" --width 1024 --examples 512
timeout 300 node dist/bench/gpu-check.js "$wide" "$out/scoring-wide.json" 2>&1 | quiet
python3 scripts/gpu/float64-scores.py "$wide" "$out/scoring-wide.json" 2>&1 | tail -4
timeout 120 python3 scripts/gpu/torch-importance.py "$wide" "$out/torch-scoring-wide.json" 2>&1 | tail -5
rm -rf "$wide"

echo "== command line: --backend auto on this machine"
work=$(mktemp -d)
cat > "$work/apl.yml" <<YAML
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
{
  node bin/apl-merge.js importance --base "$zoo/base" --model "$zoo/finetunes/digits" \
    --probe "$zoo/tasks/digits.safetensors" --backend auto --out "$work/digits-importance" 2>&1 | quiet
  for backend in auto wasm; do
    echo "-- APL merge, --backend $backend"
    node bin/apl-merge.js merge "$work/apl.yml" "$work/merged-$backend" --backend "$backend" --overwrite --json 2>&1 \
      | quiet | grep -E '"(sha256|backend|seconds|fused|gpu)"' | head -6
  done
} | tee "$out/cli.txt"
rm -rf "$work"

echo "== merging: GPU kernels against the CPU, entry by entry"
timeout 120 node dist/bench/gpu-merge-diff.js "$out/diff.json" 2>&1 | quiet | cut -c1-400

echo "== merging: GPU kernels vs CPU vs PyTorch, ${size} MB per checkpoint"
timeout 420 node dist/bench/gpu-merge.js "$out/merge.json" --size-mb "$size" 2>&1 | quiet
