/**
 * Tests that need a WebGPU adapter (a GPU, or Mesa's lavapipe on a CPU machine): they run where
 * one exists, and elsewhere are skipped — jest's summary counts them as skipped, with the reason
 * in their name. Whether one exists is found once per run by the global setup (gpu-setup.ts).
 */

export const NO_ADAPTER =
  'no WebGPU adapter (install the optional package "webgpu" and a Vulkan driver: a GPU, or mesa-vulkan-drivers ≥ 24 for lavapipe, see scripts/install-lavapipe.sh)';

function adapterName(): string | undefined {
  const name = process.env.APL_MERGE_TEST_WEBGPU_ADAPTER;
  if (name === undefined) throw new Error('APL_MERGE_TEST_WEBGPU_ADAPTER is not set: run the tests through jest.config.js, whose global setup looks for a WebGPU adapter');
  return name || undefined;
}

/** The adapter the GPU suites run on (its description), or undefined where there is none. */
export const GPU_ADAPTER = adapterName();

/** `it`, run only where an adapter exists; skipped (and said why) elsewhere. */
export function gpuIt(name: string, fn: () => Promise<void>, timeout = 120_000): void {
  if (GPU_ADAPTER) it(name, fn, timeout);
  else it.skip(`${name} — skipped: ${NO_ADAPTER}`, fn, timeout);
}

/** `describe`, whose tests run only where an adapter exists. */
export const gpuDescribe = (name: string, body: () => void): void => (GPU_ADAPTER ? describe(name, body) : describe.skip(`${name} — skipped: ${NO_ADAPTER}`, body));
