/**
 * GPU buffers made for one piece of work and released together when it ends, failed or not; a
 * pool that keeps large buffers between pieces of work; and the WGSL both scoring kernels use to
 * sum per-invocation values over a workgroup.
 */

/** Buffers smaller than this are made anew each time: allocating them costs nothing worth keeping. */
const POOLED_MIN_BYTES = 1 << 20;

/** `bytes` rounded up to whole 4-byte words, 16 at least: the size of any buffer made here. */
function wholeWords(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 4) * 4);
}

/**
 * Large buffers kept for reuse, by usage. Host-visible memory is slow to allocate and zero (a fresh
 * mapped buffer per tensor cost more than merging it), and checkpoints repeat a few tensor shapes.
 * A buffer returned with MAP_WRITE usage is mapped again before it is handed out, so takers can
 * write it at once; its old contents remain (takers overwrite what they use).
 */
export class GpuBufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private freeBytes = 0;
  /** Counts clear() calls, so that a buffer still being mapped when one happens is not kept. */
  private generation = 0;
  /** How many buffers were handed out again instead of made (for tests and benchmarks). */
  reused = 0;

  /** `maxFreeBytes`: most bytes kept while unused; beyond it returned buffers are destroyed. */
  constructor(private readonly maxFreeBytes = 2 ** 32) {}

  /** A buffer of at least `bytes` with this usage: a kept one up to a quarter larger, or a new one. */
  take(bytes: number, usage: number): GPUBuffer | undefined {
    if (bytes < POOLED_MIN_BYTES) return undefined;
    const kept = this.free.get(usage) ?? [];
    const at = kept.findIndex((b) => b.size >= bytes && b.size <= bytes * 1.25);
    if (at < 0) return undefined;
    const [buffer] = kept.splice(at, 1);
    this.freeBytes -= buffer.size;
    this.reused++;
    return buffer;
  }

  /** Size to allocate for `bytes` so that later, slightly larger requests can reuse it. */
  static sizeFor(bytes: number): number {
    const whole = wholeWords(bytes);
    return whole < POOLED_MIN_BYTES ? whole : Math.ceil(whole / POOLED_MIN_BYTES) * POOLED_MIN_BYTES;
  }

  /** Keeps `buffer` for reuse once the GPU is done with it (mapped again if it is an upload buffer). */
  give(buffer: GPUBuffer): void {
    const uploads = (buffer.usage & GPUBufferUsage.MAP_WRITE) !== 0;
    // A buffer still mapped or being mapped (work that failed half-way) is not worth recovering.
    const reusable = buffer.mapState === 'unmapped';
    if (!reusable || buffer.size < POOLED_MIN_BYTES || this.freeBytes + buffer.size > this.maxFreeBytes) {
      buffer.destroy();
      return;
    }
    this.freeBytes += buffer.size;
    const generation = this.generation;
    const keep = () => {
      if (generation !== this.generation) {
        buffer.destroy(); // cleared while it was being mapped
        return;
      }
      const list = this.free.get(buffer.usage) ?? [];
      list.push(buffer);
      this.free.set(buffer.usage, list);
    };
    if (uploads) {
      // Resolves when the submitted work that reads the buffer is done.
      buffer.mapAsync(GPUMapMode.WRITE).then(keep, () => {
        if (generation === this.generation) this.freeBytes -= buffer.size;
        buffer.destroy();
      });
    } else {
      keep();
    }
  }

  /** Destroys every kept buffer (at the end of a merge: pinned host memory should not outlive it). */
  clear(): void {
    this.generation++;
    for (const list of this.free.values()) for (const buffer of list.splice(0)) buffer.destroy();
    this.freeBytes = 0;
  }
}

export class BufferSet {
  private readonly created: GPUBuffer[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly pool?: GpuBufferPool,
  ) {}

  /**
   * A buffer of at least `bytes` (rounded up to whole 4-byte words, 16 at least), mapped for
   * writing when `mapped`. From the pool when there is one: its contents are then not zeroed.
   */
  make(bytes: number, usage: number, mapped = false): GPUBuffer {
    // A kept buffer stands in when no mapping is asked for, or for upload buffers (kept mapped).
    const kept = !mapped || usage & GPUBufferUsage.MAP_WRITE ? this.pool?.take(bytes, usage) : undefined;
    const size = this.pool ? GpuBufferPool.sizeFor(bytes) : wholeWords(bytes);
    const buffer = kept ?? this.device.createBuffer({ size, usage, mappedAtCreation: mapped });
    this.created.push(buffer);
    return buffer;
  }

  /**
   * One buffer holding `parts` one after another, written through a mapping at creation (no
   * writeBuffer copy); `offsets` are each part's start in 4-byte words.
   */
  packed(parts: ReadonlyArray<Float32Array | Uint32Array>, usage: number): { buffer: GPUBuffer; offsets: number[]; words: number } {
    const offsets: number[] = [];
    let words = 0;
    for (const values of parts) {
      offsets.push(words);
      words += values.length;
    }
    const buffer = this.make(words * 4, usage, true);
    const mapped = buffer.getMappedRange();
    parts.forEach((values, i) => new Uint32Array(mapped, offsets[i] * 4, values.length).set(new Uint32Array(values.buffer, values.byteOffset, values.length)));
    buffer.unmap();
    return { buffer, offsets, words };
  }

  /** Destroys the buffers, or gives them back to the pool. */
  destroy(): void {
    for (const buffer of this.created.splice(0)) {
      if (this.pool) this.pool.give(buffer);
      else buffer.destroy();
    }
  }
}

/**
 * WGSL: `workgroupPairSum(lid, a, b)` sums two values over a workgroup of `size` invocations (a
 * power of two) and returns both totals to every invocation. Call it from uniform control flow.
 */
export function pairSumWgsl(size: number): string {
  return /* wgsl */ `
var<workgroup> firstSums: array<f32, ${size}>;
var<workgroup> secondSums: array<f32, ${size}>;

fn workgroupPairSum(lid: u32, first: f32, second: f32) -> vec2f {
  firstSums[lid] = first;
  secondSums[lid] = second;
  for (var stride = ${size / 2}u; stride > 0u; stride /= 2u) {
    workgroupBarrier();
    if (lid < stride) {
      firstSums[lid] += firstSums[lid + stride];
      secondSums[lid] += secondSums[lid + stride];
    }
  }
  workgroupBarrier();
  return vec2f(firstSums[0], secondSums[0]);
}
`;
}
