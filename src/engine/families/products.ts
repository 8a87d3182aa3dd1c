/**
 * Matrix products that stay on TensorFlow.js WASM's fast path. Its matMul leaves XNNPACK for a
 * naive loop whenever an operand is transposed (measured: [128,784]·[256,784]ᵀ 18 ms against
 * 1.5 ms for the same product with the weight transposed first), and tfjs's own matMul gradient
 * is made of transposed products. On WASM the operand is transposed explicitly (a cheap copy)
 * before a plain product; other backends multiply transposed operands natively.
 *
 * Both products are kernels of their own (`AplProduct`, `AplProductTransposed`, forwarding to the
 * backend's Transpose and BatchMatMul) with registered gradients rather than `tf.customGrad`s:
 *  - a registered gradient is lazy per input, so backprop computes only the gradients it needs
 *    (`customGrad` computes them all, and the first layer's gradient with respect to the input
 *    data — a product as large as the layer's forward pass — is never needed);
 *  - the gradient of x·Wᵀ with respect to W is dyᵀ·x, made in W's own [out, in] layout from a
 *    transpose of the small dy, instead of transposing x and then the [in, out] result.
 */
import * as tf from '@tensorflow/tfjs';

const PRODUCT = 'AplProduct';
const PRODUCT_TRANSPOSED = 'AplProductTransposed';

type TensorInfo = ReturnType<tf.KernelFunc> extends infer T ? Exclude<T, unknown[]> : never;

/** Swaps the last two axes. */
function swapLast(t: tf.Tensor): tf.Tensor {
  return tf.transpose(t, swappedAxes(t.rank));
}

function swappedAxes(rank: number): number[] {
  const axes = Array.from({ length: rank }, (_, i) => i);
  [axes[rank - 2], axes[rank - 1]] = [axes[rank - 1], axes[rank - 2]];
  return axes;
}

tf.registerGradient({
  kernelName: PRODUCT,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => productTransposed(dy as tf.Tensor, b),
    b: () => product(swapLast(a), dy as tf.Tensor),
  }),
});

tf.registerGradient({
  kernelName: PRODUCT_TRANSPOSED,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => product(dy as tf.Tensor, b),
    b: () => product(swapLast(dy as tf.Tensor), a),
  }),
});

function kernelOf(name: string, backendName: string): tf.KernelFunc {
  const kernel = tf.getKernel(name, backendName);
  if (!kernel) throw new Error(`TensorFlow.js backend "${backendName}" has no ${name} kernel`);
  return kernel.kernelFunc;
}

/** Registers both product kernels for a backend on first use. */
function ensureKernels(backendName: string): void {
  if (tf.getKernel(PRODUCT, backendName)) return;
  const batchMatMul = kernelOf('BatchMatMul', backendName);
  const transpose = kernelOf('Transpose', backendName);
  const plain = { transposeA: false, transposeB: false };
  tf.registerKernel({
    kernelName: PRODUCT,
    backendName,
    kernelFunc: ({ inputs, backend }) => batchMatMul({ inputs, backend, attrs: plain }),
  });
  tf.registerKernel({
    kernelName: PRODUCT_TRANSPOSED,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      if (backendName !== 'wasm') return batchMatMul({ inputs, backend, attrs: { transposeA: false, transposeB: true } });
      const b = inputs.b as TensorInfo;
      const transposed = transpose({ inputs: { x: b }, backend, attrs: { perm: swappedAxes(b.shape.length) } }) as TensorInfo;
      try {
        return batchMatMul({ inputs: { a: inputs.a, b: transposed }, backend, attrs: plain });
      } finally {
        (backend as tf.KernelBackend).disposeData(transposed.dataId);
      }
    },
  });
}

function run(kernelName: string, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  ensureKernels(tf.getBackend());
  return tf.engine().runKernel(kernelName, { a, b });
}

/** a·b over the last two axes (leading axes are batch axes of equal size). */
export function product(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return run(PRODUCT, a, b);
}

/** a·bᵀ over the last two axes: x·Wᵀ for a weight stored [out, in], or q·kᵀ. */
export function productTransposed(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  linearInputObserver?.(a, b);
  return run(PRODUCT_TRANSPOSED, a, b);
}

/** Told of every x·Wᵀ's operands while `observeLinearInputs` runs (RegMean collects the inputs of each linear map). */
let linearInputObserver: ((input: tf.Tensor, weight: tf.Tensor) => void) | undefined;

/**
 * Runs `forward` with `observer` told of both operands of every a·bᵀ it computes — for a linear
 * layer x·Wᵀ, its input x and its weight W, whichever family the layer belongs to (the observer
 * tells weights from other operands, such as attention's keys, by the tensors it was given).
 */
export function observeLinearInputs<T>(observer: (input: tf.Tensor, weight: tf.Tensor) => void, forward: () => T): T {
  if (linearInputObserver) throw new Error('linear inputs are already being observed');
  linearInputObserver = observer;
  try {
    return forward();
  } finally {
    linearInputObserver = undefined;
  }
}
