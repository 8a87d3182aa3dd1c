/**
 * Seeded randomness for the stochastic merge methods (DARE, DELLA).
 *
 * Each (seed, model, tensor) gets its own stream, derived by hashing rather than by drawing in
 * sequence, so a tensor's drops do not depend on which thread merged it or on how many tensors
 * came before it: the same seed gives the same bytes with any thread count.
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

/** The stream of one model's drops in one tensor. */
export function tensorRandom(seed: number, modelIndex: number, tensorName: string): Random {
  return new Random(seed, `${modelIndex}\u0000${tensorName}`);
}
