import * as tf from '@tensorflow/tfjs';

/**
 * table[ids] (rows of a 2-D table), differentiable with respect to the table on every backend.
 * tfjs's gather gradient needs UnsortedSegmentSum, which the WASM backend lacks; here the
 * gradient is a scatter-add of the incoming rows, done on the host: O(ids × width), where a
 * one-hot product would cost O(ids × rows × width).
 */
export function gatherRows(table: tf.Tensor, ids: tf.Tensor): tf.Tensor {
  const lookup = tf.customGrad(((t: tf.Tensor, indices: tf.Tensor, save: tf.GradSaveFunc) => {
    save([t, indices]);
    return {
      value: tf.gather(t, indices),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rows, width] = saved[0].shape as [number, number];
        if (tf.getBackend() === 'webgpu') {
          // No synchronous read-back on WebGPU in Node: the one-hot product stays on the device.
          const flatIds = tf.reshape(saved[1], [-1]) as tf.Tensor1D;
          return [tf.matMul(tf.oneHot(flatIds, rows, 1, 0, 'float32'), tf.reshape(dy, [-1, width]) as tf.Tensor2D, true, false), tf.zerosLike(saved[1])];
        }
        const index = saved[1].dataSync();
        const incoming = dy.dataSync();
        const gradient = new Float32Array(rows * width);
        for (let i = 0; i < index.length; i++) {
          const target = index[i] * width;
          for (let j = 0; j < width; j++) gradient[target + j] += incoming[i * width + j];
        }
        return [tf.tensor2d(gradient, [rows, width]), tf.zerosLike(saved[1])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return lookup(table, tf.cast(ids, 'int32'));
}

