/**
 * GPU buffers made for one piece of work and destroyed together when it ends, failed or not, and
 * the WGSL both scoring kernels use to sum per-invocation values over a workgroup.
 */
export class BufferSet {
  private readonly created: GPUBuffer[] = [];

  constructor(private readonly device: GPUDevice) {}

  /** A buffer of at least `bytes` (rounded up to whole 4-byte words, 16 at least). */
  make(bytes: number, usage: number, mappedAtCreation = false): GPUBuffer {
    const buffer = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage, mappedAtCreation });
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

  destroy(): void {
    for (const buffer of this.created.splice(0)) buffer.destroy();
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
