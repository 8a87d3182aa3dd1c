/**
 * WebGPU in Node through Dawn (the optional npm package `webgpu`). One GPU instance per process,
 * shared by TensorFlow.js's WebGPU backend (scoring) and our own WGSL kernels (merging).
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

let instance: Promise<GPU | undefined> | undefined;

/**
 * The package is an ES module around Dawn's native addon. Node 20.19+ can require() it; where
 * ES modules cannot be required (Jest's module runtime, older Node) the addon is loaded from the
 * package's directory the way its index.js does.
 */
function loadDawn(): DawnModule | undefined {
  try {
    return require('webgpu') as DawnModule;
  } catch {
    try {
      const packageDirectory = dirname(require.resolve('webgpu/package.json'));
      const platform = process.platform === 'darwin' ? 'darwin-universal' : `${process.platform}-${process.arch}`;
      return require(join(packageDirectory, 'dist', platform, 'dawn.node')) as DawnModule;
    } catch {
      return undefined;
    }
  }
}

/** navigator.gpu's equivalent, or undefined when the package `webgpu` cannot be loaded. */
export function webGpu(): Promise<GPU | undefined> {
  instance ??= (async () => {
    const dawn = loadDawn();
    if (!dawn) return undefined;
    // Mesa's drivers complain on every start when this is unset; the value is not used for compute.
    process.env.XDG_RUNTIME_DIR ??= tmpdir();
    // GPUBufferUsage, GPUMapMode, … as globals, as in a browser.
    for (const [name, value] of Object.entries(dawn.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    return dawn.create([]);
  })();
  return instance;
}

export interface GpuAdapterInfo {
  description: string;
  vendor: string;
  architecture: string;
  /** A CPU implementation of WebGPU (Mesa's lavapipe, SwiftShader): correct but not fast. */
  software: boolean;
}

export function describeAdapter(adapter: GPUAdapter): GpuAdapterInfo {
  const info = adapter.info;
  const software = info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(`${info.description} ${info.device}`);
  return { description: info.description || info.device || info.vendor, vendor: info.vendor, architecture: info.architecture, software };
}

/** What to tell a user who asked for WebGPU where there is none. */
export const NO_ADAPTER_MESSAGE = 'no WebGPU adapter: install the optional package "webgpu" and run on a machine with a GPU and a Vulkan driver';

/** WebGPU cannot be used here: no adapter, or a device that refuses our kernels. */
export class GpuUnavailableError extends Error {}

/**
 * A device on the first adapter, with the adapter's largest storage bindings and, when asked for
 * and offered, timestamp queries; throws GpuUnavailableError saying why when there is none.
 */
export async function openGpuDevice(options: { timestamps?: boolean } = {}): Promise<{ device: GPUDevice; adapter: GpuAdapterInfo }> {
  const adapter = await requestGpuAdapter();
  if (!adapter) throw new GpuUnavailableError(NO_ADAPTER_MESSAGE);
  const device = await adapter.requestDevice({
    requiredFeatures: options.timestamps && adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  });
  return { device, adapter: describeAdapter(adapter) };
}

/**
 * Workgroups laid out along x and, past `maxPerDimension` (the device's
 * maxComputeWorkgroupsPerDimension), along y; kernels number them y·x + x. The last row may hold
 * whole workgroups past the work, which kernels must leave without writing anything.
 */
export function workgroupGrid(workgroups: number, maxPerDimension: number): [number, number] {
  const x = Math.min(Math.max(1, workgroups), maxPerDimension);
  return [x, Math.ceil(Math.max(1, workgroups) / x)];
}

/** Builds kernels (shader modules, pipelines) on a device; a WGSL error fails here, with its message. */
export async function buildKernels<T>(device: GPUDevice, build: () => T): Promise<T> {
  device.pushErrorScope('validation');
  const built = build();
  const error = await device.popErrorScope();
  if (error) throw new GpuUnavailableError(`WebGPU device error: ${error.message}`);
  return built;
}

/** The first adapter WebGPU offers, or undefined (no package, no driver, no device). */
export async function requestGpuAdapter(): Promise<GPUAdapter | undefined> {
  const gpu = await webGpu();
  if (!gpu) return undefined;
  return (await gpu.requestAdapter()) ?? undefined;
}

/** Device nodes of NVIDIA or DRM GPUs: without one, trying WebGPU only costs time and warnings. */
export function gpuDevicePresent(): boolean {
  return existsSync('/dev/nvidia0') || existsSync('/dev/dri/renderD128') || existsSync('/dev/dxg');
}

/**
 * Whether `auto` should use the GPU: a GPU device node and a hardware adapter. A software adapter
 * (lavapipe, SwiftShader) is slower than the CPU paths, and probing without a device node only
 * costs time and warnings.
 */
export async function hardwareGpuPresent(): Promise<boolean> {
  if (!gpuDevicePresent()) return false;
  const adapter = await requestGpuAdapter();
  return adapter !== undefined && !describeAdapter(adapter).software;
}

/**
 * `open` run once per process and its result kept for every later call (GPU devices and compiled
 * pipelines are worth keeping); a failure is not kept, so a later call tries again.
 */
export function sharedOnce<T>(open: () => Promise<T>): () => Promise<T> {
  let shared: Promise<T> | undefined;
  return () => {
    if (!shared) {
      const opening = open();
      shared = opening;
      opening.catch(() => {
        if (shared === opening) shared = undefined;
      });
    }
    return shared;
  };
}
