/**
 * The counter-based generator behind merge drops, against the published known-answer vectors of
 * Threefry-2x32-20 (Random123's kat_vectors, also JAX's random tests), and the stream layout.
 */
import { dropKey, StreamKey, streamWords, threefry2x32 } from '../src/engine/kernels/random';

const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, '0'));

describe('Threefry-2x32-20', () => {
  it.each([
    [[0, 0], [0, 0], ['6b200159', '99ba4efe']],
    [[0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], ['1cb996fc', 'bb002be7']],
    [[0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3], ['c4923a9c', '483df7a0']],
  ])('key %j counter %j gives %j', (key, counter, expected) => {
    const out = new Uint32Array(2);
    threefry2x32({ k0: key[0], k1: key[1] }, counter[0], counter[1], out);
    expect(hex(out)).toEqual(expected);
  });

  it('word i of a stream does not depend on where reading starts', () => {
    const key: StreamKey = dropKey(7, 1, 'layer.weight');
    const all = streamWords(key, 0, new Uint32Array(64));
    for (const offset of [1, 2, 3, 17, 33]) {
      expect(Array.from(streamWords(key, offset, new Uint32Array(64 - offset)))).toEqual(Array.from(all.subarray(offset)));
    }
    // counters above 2^32 use the second counter word
    const far = streamWords(key, 2 * 4294967296 + 4, new Uint32Array(2));
    const pair = new Uint32Array(2);
    threefry2x32(key, 2, 1, pair);
    expect(Array.from(far)).toEqual(Array.from(pair));
  });

  it('keys depend on seed, model index and tensor name', () => {
    const keys = [dropKey(1, 0, 'a'), dropKey(2, 0, 'a'), dropKey(1, 1, 'a'), dropKey(1, 0, 'b'), dropKey(4294967296 + 1, 0, 'a')];
    expect(new Set(keys.map((k) => `${k.k0}:${k.k1}`)).size).toBe(keys.length);
    expect(dropKey(1, 0, 'a')).toEqual(dropKey(1, 0, 'a'));
  });

  it('draws uniform words (a coarse check on 2^16 draws)', () => {
    const words = streamWords(dropKey(3, 0, 'u'), 0, new Uint32Array(65536));
    const bins = new Array(16).fill(0);
    for (const w of words) bins[w >>> 28]++;
    for (const count of bins) expect(Math.abs(count - 4096)).toBeLessThan(4 * Math.sqrt(4096));
  });
});
