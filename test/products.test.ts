/**
 * The engine's matrix products (families/products.ts): the same values and gradients as tfjs's own
 * matMul on every backend we run on, and gradients computed only for the inputs backprop needs.
 */
import * as tf from '@tensorflow/tfjs';
import { product, productTransposed } from '../src/engine/families/products';
import { useBackend } from '../src/engine/tensors/backend';
import { gpuIt } from './helpers/gpu';

afterAll(async () => {
  await useBackend('wasm');
});

function filled(shape: number[], phase: number): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Array.from({ length: size }, (_, i) => Math.sin(i * 0.37 + phase)), shape);
}

async function close(actual: tf.Tensor, expected: tf.Tensor): Promise<void> {
  expect(actual.shape).toEqual(expected.shape);
  const [a, e] = [await actual.data(), await expected.data()];
  const scale = Math.max(1, ...Array.from(e, Math.abs));
  a.forEach((v, i) => expect(Math.abs(v - e[i]) / scale).toBeLessThan(1e-5));
}

/** Loss whose gradients exercise both operands: sum((a·op(b))²) with uneven weights. */
function checks(shapeA: number[], shapeB: number[], transposed: boolean) {
  return async () => {
    const a = filled(shapeA, 0.1);
    const b = filled(shapeB, 1.3);
    const ours = (x: tf.Tensor, y: tf.Tensor) => (transposed ? productTransposed(x, y) : product(x, y));
    const reference = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D, false, transposed);
    await close(ours(a, b), reference(a, b));
    const loss = (f: typeof ours) => (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(f(x, y))) as tf.Scalar;
    const [da, db] = tf.grads(loss(ours))([a, b]);
    const [ra, rb] = tf.grads(loss(reference))([a, b]);
    await close(da, ra);
    await close(db, rb);
  };
}

const cases: Array<[string, number[], number[], boolean]> = [
  ['x·W', [5, 7], [7, 3], false],
  ['x·Wᵀ', [5, 7], [3, 7], true],
  ['batched q·kᵀ', [2, 3, 4, 6], [2, 3, 5, 6], true],
  ['batched p·v', [2, 3, 4, 5], [2, 3, 5, 6], false],
];

describe.each(['wasm', 'cpu'] as const)('on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  it.each(cases)('%s matches tf.matMul in value and gradient', async (_name, shapeA, shapeB, transposed) => {
    await checks(shapeA, shapeB, transposed)();
  });
});

gpuIt('matches tf.matMul on WebGPU too', async () => {
  await useBackend('webgpu');
  for (const [, shapeA, shapeB, transposed] of cases) await checks(shapeA, shapeB, transposed)();
  await useBackend('wasm');
});

it('computes only the gradients backprop asks for: none for constant input data', async () => {
  await useBackend('wasm');
  const x = filled([16, 12], 0.5);
  const weight = filled([8, 12], 2.0);
  const head = filled([4, 8], 3.0);
  const loss = (w: tf.Tensor) => tf.sum(productTransposed(tf.relu(productTransposed(x, w)), head)) as tf.Scalar;
  const profile = await tf.profile(() => tf.grad(loss)(weight));
  const products = profile.kernels.filter((k) => k.name.startsWith('AplProduct')).map((k) => k.name);
  // Forward: two products. Backward: the hidden layer's input gradient (through the head), and the
  // weight's gradient; neither x's gradient nor the head's.
  expect(products).toEqual(['AplProductTransposed', 'AplProductTransposed', 'AplProduct', 'AplProduct']);
});
