/**
 * Which TensorFlow.js backend runs the engine's forward and backward passes.
 *  - `webgpu`: a GPU through Dawn's WebGPU for Node (optional npm package `webgpu`) and
 *    @tensorflow/tfjs-backend-webgpu;
 *  - `wasm`: WebAssembly with SIMD, the fast CPU path and the default without a GPU;
 *  - `cpu`: the pure-JS reference backend;
 *  - `auto`: WebGPU when the machine has a GPU device node and a hardware adapter answers, else WASM.
 * The environment variable APL_MERGE_BACKEND sets the default. The backend in use is reported with
 * every result (zoo manifests, importance artifacts, merge preparation, benchmark reports).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { BackendChoice, defaultBackend } from '../backend-choice';
import { hardwareGpuPresent, NO_ADAPTER_MESSAGE, requestGpuAdapter, webGpu } from '../gpu/dawn';

export { BACKENDS, parseBackend } from '../backend-choice';
export type { BackendChoice } from '../backend-choice';

let active: string | undefined;

let webgpuRegistered: Promise<boolean> | undefined;

/** Installs navigator.gpu from the `webgpu` package and registers tfjs's WebGPU backend; false when there is no adapter. */
function registerWebGpu(): Promise<boolean> {
  webgpuRegistered ??= (async () => {
    const gpu = await webGpu();
    if (!gpu || !(await requestGpuAdapter())) return false;
    Object.defineProperty(globalThis, 'navigator', { value: { ...(globalThis as { navigator?: object }).navigator, gpu }, configurable: true, writable: true });
    require('@tensorflow/tfjs-backend-webgpu');
    return true;
  })();
  return webgpuRegistered;
}

/** Selects and initialises a backend once per process; returns its name. */
export async function useBackend(choice: BackendChoice = defaultBackend()): Promise<string> {
  let wanted: string = choice;
  if (choice === 'auto') wanted = (await hardwareGpuPresent()) && (await registerWebGpu()) ? 'webgpu' : 'wasm';
  else if (choice === 'webgpu' && !(await registerWebGpu())) throw new Error(NO_ADAPTER_MESSAGE);
  if (active === wanted) return active;
  const ok = await tf.setBackend(wanted);
  if (!ok) throw new Error(`TensorFlow.js backend "${wanted}" failed to initialise`);
  await tf.ready();
  active = tf.getBackend();
  return active;
}
