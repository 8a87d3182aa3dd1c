/**
 * Tests that need a WebGPU adapter (a GPU, or Mesa's lavapipe on a CPU machine): they run where
 * one exists, and elsewhere pass with a message saying why they did not run.
 */
import { requestGpuAdapter } from '../../src/engine/gpu/dawn';

export const NO_ADAPTER =
  'no WebGPU adapter (install the optional package "webgpu" and a Vulkan driver: a GPU, or mesa-vulkan-drivers ≥ 24 for lavapipe, see scripts/install-lavapipe.sh)';

let adapter: Promise<boolean> | undefined;

export function gpuAvailable(): Promise<boolean> {
  adapter ??= requestGpuAdapter().then((found) => found !== undefined);
  return adapter;
}

/** `it`, run only where an adapter exists. */
export function gpuIt(name: string, fn: () => Promise<void>, timeout = 120_000): void {
  it(
    name,
    async () => {
      if (!(await gpuAvailable())) return console.warn(`skipped "${name}": ${NO_ADAPTER}`);
      await fn();
    },
    timeout,
  );
}
