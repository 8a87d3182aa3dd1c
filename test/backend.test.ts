/**
 * Backend selection: WASM without a GPU; WebGPU only where an adapter answers, with a clear error
 * otherwise. Where only a software adapter exists (Mesa lavapipe), `webgpu` must still compute what
 * WASM computes, and `auto` must not pick it.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { requestGpuAdapter } from '../src/engine/gpu/dawn';
import { parseBackend, useBackend } from '../src/engine/tensors/backend';

const gpuMachine = existsSync('/dev/nvidia0') || existsSync('/dev/dri/renderD128');

afterAll(async () => {
  await useBackend('wasm');
});

it('rejects an unknown backend name, listing the choices', () => {
  expect(() => parseBackend('tpu')).toThrow('unknown backend "tpu" (choose one of auto, webgpu, wasm, cpu)');
});

(gpuMachine ? it.skip : it)('chooses WASM for auto on a machine without a GPU device', async () => {
  expect(await useBackend('auto')).toBe('wasm');
});

it('explains why WebGPU is unavailable instead of falling back silently, or computes as WASM does', async () => {
  if (!(await requestGpuAdapter())) {
    await expect(useBackend('webgpu')).rejects.toThrow(/no WebGPU adapter: install the optional package "webgpu" and run on a machine with a GPU/);
    expect(await useBackend('wasm')).toBe('wasm');
    return;
  }
  const a = tf.tensor2d(Array.from({ length: 48 }, (_, i) => Math.sin(i)), [6, 8]);
  const b = tf.tensor2d(Array.from({ length: 40 }, (_, i) => Math.cos(i)), [8, 5]);
  expect(await useBackend('wasm')).toBe('wasm');
  const onWasm = await tf.relu(tf.matMul(a, b)).data();
  expect(await useBackend('webgpu')).toBe('webgpu');
  const onGpu = await tf.relu(tf.matMul(tf.tensor2d(Array.from(await a.data()), [6, 8]), tf.tensor2d(Array.from(await b.data()), [8, 5]))).data();
  Array.from(onWasm).forEach((v, i) => expect(Math.abs(onGpu[i] - v)).toBeLessThan(1e-5));
  expect(await useBackend('wasm')).toBe('wasm');
});
