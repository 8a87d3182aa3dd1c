/**
 * Compares apl-merge's encoder logits with the reference `transformers` computed
 * (scripts/gpu/hf-reference.py), for each model directory given: node dist/bench/hf-parity.js DIR
 * Prints one line per model and exits non-zero when max |Δ| exceeds 1e-4.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadModel, toTensors } from '../src/engine/families/model';
import { logits } from '../src/engine/families/types';
import { useBackend } from '../src/engine/tensors/backend';

export async function maxLogitDifference(modelDir: string, referenceFile: string): Promise<{ maxAbs: number; shape: number[] }> {
  const reference = JSON.parse(readFileSync(referenceFile, 'utf8')) as { input_ids: number[][]; logits: number[][] };
  const model = loadModel(modelDir);
  const { tensors, lookup } = toTensors(model);
  try {
    const ids = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const out = logits(model.family, model.config, lookup, ids, 'classification');
    const got = (await out.array()) as number[][];
    tf.dispose([ids, out]);
    let maxAbs = 0;
    got.forEach((row, i) => row.forEach((v, j) => (maxAbs = Math.max(maxAbs, Math.abs(v - reference.logits[i][j])))));
    return { maxAbs, shape: [got.length, got[0].length] };
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  await useBackend();
  let worst = 0;
  for (const name of ['bert', 'roberta']) {
    const { maxAbs, shape } = await maxLogitDifference(join(dir, name), join(dir, `${name}.json`));
    worst = Math.max(worst, maxAbs);
    console.log(`${name}: logits ${JSON.stringify(shape)}, max |apl-merge − transformers| = ${maxAbs.toExponential(3)}`);
  }
  process.exitCode = worst <= 1e-4 ? 0 : 1;
}

if (require.main === module) main();
