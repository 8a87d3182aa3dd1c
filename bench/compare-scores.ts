/**
 * Compares two importance score files (bench/gpu-check.ts output and
 * scripts/gpu/torch-importance.py output): max |Δ| / max |score| per task and score.
 *
 *   node dist/bench/compare-scores.js APL.json TORCH.json
 */
import { readFileSync } from 'node:fs';

type Scores = Record<string, { loss: number[]; gradient: number[] }>;

const ours = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { scores: { wasm: Scores } };
const theirs = JSON.parse(readFileSync(process.argv[3], 'utf8')) as { scores: Scores };
let worst = 0;
for (const [task, reference] of Object.entries(theirs.scores)) {
  for (const kind of ['loss', 'gradient'] as const) {
    const a = ours.scores.wasm[task][kind];
    const b = reference[kind];
    const scale = Math.max(...b.map(Math.abs), 1e-12);
    const rel = Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / scale;
    worst = Math.max(worst, rel);
    console.log(`${task} ${kind}: ${a.length} partitions, max |apl-merge − torch| / max |score| = ${rel.toExponential(2)}`);
  }
}
process.exitCode = worst <= 1e-3 ? 0 : 1;
