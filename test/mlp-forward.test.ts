/**
 * The MLP family's forward pass against logits worked out by hand (not by the engine): pixels
 * scaled by 1/255, Linear + ReLU, the task's Linear head, weights stored [out, in].
 */
import * as tf from '@tensorflow/tfjs';
import { mlpFamily, MlpConfig } from '../src/engine/families/mlp';
import { modelOf, toTensors } from '../src/engine/families/model';
import { logits, range } from '../src/engine/families/types';
import { useBackend } from '../src/engine/tensors/backend';

beforeAll(async () => {
  await useBackend('wasm');
});

it('computes the logits of a 4 → 2 → 3 MLP as worked out by hand', async () => {
  const config: MlpConfig = { family: 'mlp', inputSize: 4, hiddenSizes: [2], tasks: { t: 3 } };
  const params = new Map<string, Float32Array>([
    ['trunk.layers.0.weight', Float32Array.from([1, 1, 2, 0.5, -0.5, 0.25, 1, -1])],
    ['trunk.layers.0.bias', Float32Array.from([-0.5, 0.6])],
    ['heads.t.weight', Float32Array.from([1, 2, -1, 0.5, 0.5, -3])],
    ['heads.t.bias', Float32Array.from([0, 0.1, -0.2])],
  ]);
  const model = modelOf(mlpFamily, config, params, '');
  // Pixels [0, 255, 51, 102] are x = [0, 1, 0.2, 0.4]: hidden pre-activations 1.1 and 0.65, both kept.
  // All 255 is x = 1: 4.0 and 0.35. All 0: −0.5 (cut by the ReLU) and 0.6.
  const split = { inputs: Uint8Array.from([0, 255, 51, 102, 255, 255, 255, 255, 0, 0, 0, 0]), exampleShape: [2, 2], labels: new Int32Array(3), count: 3 };
  const expected = [
    [1.1 * 1 + 0.65 * 2, 1.1 * -1 + 0.65 * 0.5 + 0.1, 1.1 * 0.5 + 0.65 * -3 - 0.2], // 2.4, −0.675, −1.6
    [4.0 * 1 + 0.35 * 2, 4.0 * -1 + 0.35 * 0.5 + 0.1, 4.0 * 0.5 + 0.35 * -3 - 0.2], // 4.7, −3.725, 0.75
    [0.6 * 2, 0.6 * 0.5 + 0.1, 0.6 * -3 - 0.2], // 1.2, 0.4, −2.0
  ];
  const { tensors, lookup } = toTensors(model);
  try {
    const out = tf.tidy(() => logits(mlpFamily, config, lookup, mlpFamily.inputs(config, split, range(0, 3), 'hand case'), 't'));
    expect(out.shape).toEqual([3, 3]);
    const values = Array.from(await out.data());
    out.dispose();
    values.forEach((v, i) => expect(Math.abs(v - expected[Math.floor(i / 3)][i % 3])).toBeLessThan(1e-6));
  } finally {
    tensors.forEach((t) => t.dispose());
  }
});
