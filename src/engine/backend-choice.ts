/**
 * The engine's backend choice, shared by TensorFlow.js scoring (tensors/backend.ts) and merging
 * (merge/run.ts) without loading either: `webgpu` runs on a GPU, `wasm` and `cpu` on the CPU,
 * `auto` takes a GPU when the machine has one. APL_MERGE_BACKEND sets the default.
 */
export const BACKENDS = ['auto', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export function parseBackend(value: string): BackendChoice {
  if (!(BACKENDS as readonly string[]).includes(value)) {
    throw new Error(`unknown backend "${value}" (choose one of ${BACKENDS.join(', ')})`);
  }
  return value as BackendChoice;
}

/** The choice from APL_MERGE_BACKEND, or auto. */
export function defaultBackend(): BackendChoice {
  return parseBackend(process.env.APL_MERGE_BACKEND ?? 'auto');
}
