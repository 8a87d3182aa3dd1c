/** Backend selection: WASM without a GPU; WebGPU only where an adapter answers, with a clear error otherwise. */
import { existsSync } from 'node:fs';
import { parseBackend, useBackend } from '../src/engine/tensors/backend';

const gpuMachine = existsSync('/dev/nvidia0') || existsSync('/dev/dri/renderD128');

it('rejects an unknown backend name, listing the choices', () => {
  expect(() => parseBackend('tpu')).toThrow('unknown backend "tpu" (choose one of auto, webgpu, wasm, cpu)');
});

(gpuMachine ? it.skip : it)('chooses WASM for auto on a machine without a GPU device', async () => {
  expect(await useBackend('auto')).toBe('wasm');
});

(gpuMachine ? it.skip : it)('explains why WebGPU is unavailable instead of falling back silently', async () => {
  await expect(useBackend('webgpu')).rejects.toThrow(/no WebGPU adapter: install the optional package "webgpu" and run on a machine with a GPU/);
  expect(await useBackend('wasm')).toBe('wasm');
});
