/**
 * The WebAssembly (SIMD) build of the hot merge kernels, and the arena that places tensors in its
 * memory. Kernels in combine.ts, select.ts and sparsify.ts take the WASM path when every array
 * they get lives in this memory (the merge engine reads tensors straight into it), and their
 * typed-array code otherwise; both give identical bits.
 *
 * One instance per thread: each worker has its own module state and memory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  resultsPointer(): number;
  countNonFinite(pointer: number, n: number): number;
  subtractInPlace(x: number, base: number, n: number): void;
  topKCut(pointer: number, n: number, k: number): void;
  applyTopK(pointer: number, n: number, thresholdBits: number, take: number, countAtThreshold: number, scale: number): void;
  combine(base: number, deltas: number, weights: number, count: number, n: number, out: number, consensus: number, normalize: number, lambda: number, roundToOdd: number): void;
  dropBernoulli(pointer: number, n: number, k0: number, k1: number, offset: number, threshold: number, scale: number): void;
}

let kernels: KernelExports | undefined;

/** The compiled module: beside this file in dist/, or in dist/ when running from src/ under a TS test runner. */
function modulePath(): string {
  const beside = join(__dirname, 'kernels.wasm');
  if (existsSync(beside)) return beside;
  const built = resolve(__dirname, '../../../dist/src/engine/kernels/kernels.wasm');
  if (existsSync(built)) return built;
  throw new Error(`kernels.wasm not found (looked for ${beside} and ${built}); run "npm run build"`);
}

export function wasmKernels(): KernelExports {
  if (!kernels) {
    const module = new WebAssembly.Module(readFileSync(modulePath()));
    kernels = new WebAssembly.Instance(module, { env: { abort: () => { throw new Error('wasm kernel aborted'); } } }).exports as unknown as KernelExports;
  }
  return kernels;
}

/** The byte address of an array in kernel memory, or undefined when it lives elsewhere. */
export function wasmAddress(array: Float32Array): number | undefined {
  return kernels && array.buffer === kernels.memory.buffer ? array.byteOffset : undefined;
}

export function allInWasm(...arrays: Float32Array[]): boolean {
  return arrays.every((a) => wasmAddress(a) !== undefined);
}

const PAGE = 65536;
/** Room for kernel arguments that are arrays: up to 256 delta addresses and weights. */
const SCRATCH_BYTES = 4096;

/**
 * Bump allocation in kernel memory for one tensor job at a time. `reserve` grows the memory once
 * for the whole job first, because growing detaches every view made before it.
 */
export class WasmArena {
  private readonly kernels = wasmKernels();
  private readonly start = align(this.kernels.heapBase(), 16) + SCRATCH_BYTES;
  private cursor = this.start;

  /** Starts a new job needing `bytes` in all (allocations are 16-byte aligned: add 16 per array). */
  reset(bytes: number): void {
    const needed = this.start + bytes;
    const memory = this.kernels.memory;
    if (needed > memory.buffer.byteLength) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE));
    this.cursor = this.start;
  }

  floats(count: number): Float32Array {
    const address = this.cursor;
    this.cursor = align(address + count * 4, 16);
    if (this.cursor > this.kernels.memory.buffer.byteLength) throw new Error('wasm arena overflow: reserve more before allocating');
    return new Float32Array(this.kernels.memory.buffer, address, count);
  }
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Address of the scratch area where array arguments (delta addresses, weights) are written. */
export function scratchAddress(): number {
  return align(wasmKernels().heapBase(), 16);
}
