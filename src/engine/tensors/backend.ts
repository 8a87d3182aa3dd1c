/**
 * Which TensorFlow.js backend runs the engine's forward and backward passes.
 * `auto` picks WebGPU where a GPU adapter exists (not yet wired: see the roadmap) and otherwise
 * WASM (SIMD), the fast CPU path; `cpu` is the pure-JS reference backend. The environment variable
 * APL_MERGE_BACKEND sets the default. The backend in use is reported with every result.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export const BACKENDS = ['auto', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

let active: string | undefined;

export function parseBackend(value: string): BackendChoice {
  if (!(BACKENDS as readonly string[]).includes(value)) {
    throw new Error(`unknown backend "${value}" (choose one of ${BACKENDS.join(', ')})`);
  }
  return value as BackendChoice;
}

/** Selects and initialises a backend once per process; returns its name. */
export async function useBackend(choice: BackendChoice = parseBackend(process.env.APL_MERGE_BACKEND ?? 'auto')): Promise<string> {
  const wanted = choice === 'auto' ? 'wasm' : choice;
  if (active === wanted) return active;
  const ok = await tf.setBackend(wanted);
  if (!ok) throw new Error(`TensorFlow.js backend "${wanted}" failed to initialise`);
  await tf.ready();
  active = tf.getBackend();
  return active;
}

export function activeBackend(): string | undefined {
  return active;
}
