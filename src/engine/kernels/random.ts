/**
 * Seeded randomness.
 *
 * Merge drops (DARE, DELLA, APL) use a counter-based generator, Threefry-2x32-20 (Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC 2011; JAX's default): word i of a stream is a
 * pure function of the stream's key and i. Each (seed, model, tensor) has its own key, so a
 * tensor's drops depend neither on the thread that merged it nor on the tensors before it, and a
 * GPU thread computes the same word for element i as the CPU does (src/engine/gpu).
 *
 * Sequential uses (zoo data, training batches, initialisation) keep the small sfc32 generator.
 */

/** 32-bit FNV-1a over a string's UTF-16 code units, then mixed. */
function hashString(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return mix32(h);
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** sfc32: small, fast, passes PractRand; state is four 32-bit words. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream: string) {
    const low = seed >>> 0;
    const high = Math.floor(seed / 4294967296) >>> 0;
    this.a = hashString(stream, low);
    this.b = hashString(stream, high ^ 0x9e3779b9);
    this.c = mix32(low ^ 0x85ebca6b);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }
}

/** A sequential stream for one model and one tensor (tests and synthetic data). */
export function tensorRandom(seed: number, modelIndex: number, tensorName: string): Random {
  return new Random(seed, `${modelIndex}\u0000${tensorName}`);
}

/** The 64-bit key of a counter-based stream. */
export interface StreamKey {
  k0: number;
  k1: number;
}

/** The key of one model's drops in one tensor. */
export function dropKey(seed: number, modelIndex: number, tensorName: string): StreamKey {
  const stream = `drop\u0000${modelIndex}\u0000${tensorName}`;
  const low = seed >>> 0;
  const high = Math.floor(seed / 4294967296) >>> 0;
  return { k0: hashString(stream, low), k1: hashString(stream, high ^ 0x9e3779b9) };
}

const ROTATIONS = Int32Array.of(13, 15, 26, 6, 17, 29, 16, 24);

/** Key word `index` (0, 1, or the parity word 2) of the schedule. */
function keyWord(k0: number, k1: number, index: number): number {
  return index === 0 ? k0 : index === 1 ? k1 : 0x1bd11bda ^ k0 ^ k1;
}

/** Threefry-2x32 with 20 rounds: encrypts the counter (c0, c1) under the key; writes two words at out[at]. */
export function threefry2x32(key: StreamKey, c0: number, c1: number, out: Uint32Array, at = 0): void {
  const k0 = key.k0 | 0;
  const k1 = key.k1 | 0;
  let x0 = (c0 + k0) | 0;
  let x1 = (c1 + k1) | 0;
  for (let round = 0; round < 20; round++) {
    const r = ROTATIONS[round & 7];
    x0 = (x0 + x1) | 0;
    x1 = ((x1 << r) | (x1 >>> (32 - r))) ^ x0;
    if ((round & 3) === 3) {
      const injection = (round + 1) >> 2;
      x0 = (x0 + keyWord(k0, k1, injection % 3)) | 0;
      x1 = (x1 + keyWord(k0, k1, (injection + 1) % 3) + injection) | 0;
    }
  }
  out[at] = x0;
  out[at + 1] = x1;
}

/**
 * Words [offset, offset + out.length) of a stream: word i is word (i mod 2) of the block with
 * counter (floor(i/2) mod 2^32, floor(i/2^33)).
 */
export function streamWords(key: StreamKey, offset: number, out: Uint32Array): Uint32Array {
  const pair = new Uint32Array(2);
  let i = 0;
  // An odd first word: the second word of its block.
  if (out.length > 0 && offset % 2 === 1) {
    const block = (offset - 1) / 2;
    threefry2x32(key, block >>> 0, Math.floor(block / 4294967296) >>> 0, pair);
    out[i++] = pair[1];
  }
  for (; i + 1 < out.length; i += 2) {
    const block = (offset + i) / 2;
    threefry2x32(key, block >>> 0, Math.floor(block / 4294967296) >>> 0, out, i);
  }
  if (i < out.length) {
    const block = (offset + i) / 2;
    threefry2x32(key, block >>> 0, Math.floor(block / 4294967296) >>> 0, pair);
    out[i] = pair[0];
  }
  return out;
}
