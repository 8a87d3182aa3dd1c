/**
 * The WebAssembly kernels against their typed-array twins: the same inputs must give the same
 * bits, on random data with ties, zeros, odd lengths (SIMD tails) and every combine mode.
 */
import { combineTaskVectors, ConsensusMethod, subtractInPlace } from '../src/engine/kernels/combine';
import { dropKey, streamWords, tensorRandom } from '../src/engine/kernels/random';
import { topKCut } from '../src/engine/kernels/select';
import { applyDrop, magnitudeRule } from '../src/engine/kernels/recipe';
import { dropByStream, keepThreshold } from '../src/engine/kernels/sparsify';
import { wasmAddress, WasmArena, wasmKernels } from '../src/engine/kernels/wasm';

const arena = new WasmArena();

function randomValues(n: number, seed: number): Float32Array {
  const random = tensorRandom(seed, 0, 'values');
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = random.nextUint32();
    // a mix of repeated magnitudes, zeros, and continuous values of both signs
    values[i] = r % 11 === 0 ? 0 : r % 7 === 0 ? ((r % 3) - 1) * 0.5 : (random.nextFloat() - 0.5) * 0.1;
  }
  return values;
}

/** Copies arrays into kernel memory (one arena job). */
function inWasm(arrays: Float32Array[]): Float32Array[] {
  arena.reset(arrays.reduce((t, a) => t + a.byteLength + 16, 0));
  return arrays.map((a) => {
    const view = arena.floats(a.length);
    view.set(a);
    return view;
  });
}

const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('WASM kernels match the typed-array kernels bit for bit', () => {
  it('places arena arrays in kernel memory and plain arrays outside it', () => {
    const [inside] = inWasm([new Float32Array(8)]);
    expect(wasmAddress(inside)).toBeDefined();
    expect(wasmAddress(new Float32Array(8))).toBeUndefined();
  });

  it.each([1, 3, 4, 5, 1023, 4096 + 3])('subtract and magnitude prune (n = %i)', (n) => {
    for (const density of [0.1, 0.5, 0.9]) {
      const base = randomValues(n, n);
      const x = randomValues(n, n + 1);
      const [wasmBase, wasmX] = inWasm([base, x]);
      const jsX = x.slice();
      subtractInPlace(jsX, base);
      subtractInPlace(wasmX, wasmBase);
      expect(bitsOf(wasmX)).toEqual(bitsOf(jsX));
      for (const rescale of [false, true]) {
        const js = jsX.slice();
        const [wasm] = inWasm([jsX]);
        applyDrop(js, magnitudeRule(density, n, rescale), [n]);
        applyDrop(wasm, magnitudeRule(density, n, rescale), [n]);
        expect(bitsOf(wasm)).toEqual(bitsOf(js));
        expect(js.filter((v) => v !== 0).length).toBeLessThanOrEqual(Math.floor(density * n));
      }
    }
  });

  it('selects the same cut, including the count at the threshold', () => {
    const values = randomValues(5000, 9);
    const [wasm] = inWasm([values]);
    for (const k of [1, 17, 2500, 4999, 5000]) {
      const js = topKCut(new Uint32Array(values.buffer), k);
      const fromWasm = topKCut(new Uint32Array(wasm.buffer, wasm.byteOffset, wasm.length), k);
      expect(fromWasm).toEqual(js);
    }
  });

  const modes: Array<[ConsensusMethod | undefined, boolean]> = [
    [undefined, false],
    [undefined, true],
    ['sum', true],
    ['sum', false],
    ['count', true],
  ];
  it.each(modes)('combines task vectors (consensus %s, normalize %s)', (consensus, normalize) => {
    for (const n of [1, 2, 7, 4099]) {
      const base = randomValues(n, 100 + n);
      const deltas = [randomValues(n, 200 + n), randomValues(n, 300 + n), randomValues(n, 400 + n)];
      const options = { weights: [1, 0.6, -0.25], consensus, normalize, lambda: 0.8 };
      const js = combineTaskVectors(base, deltas.map((d) => d.slice()), options, new Float32Array(n));
      const [wasmBase, ...wasmDeltas] = inWasm([base, ...deltas]);
      const wasm = combineTaskVectors(wasmBase, wasmDeltas, options, wasmBase);
      expect(bitsOf(wasm)).toEqual(bitsOf(js));
    }
  });

  it.each(modes)('rounds to odd for half-type outputs alike (consensus %s, normalize %s), and exactly as the rule says', (consensus, normalize) => {
    for (const n of [1, 2, 7, 4099]) {
      const base = randomValues(n, 500 + n);
      const deltas = [randomValues(n, 600 + n), randomValues(n, 700 + n)];
      const options = { weights: [0.7, 0.35], consensus, normalize, lambda: 0.9, roundToOdd: true };
      const js = combineTaskVectors(base, deltas.map((d) => d.slice()), options, new Float32Array(n));
      const [wasmBase, ...wasmDeltas] = inWasm([base, ...deltas]);
      const wasm = combineTaskVectors(wasmBase, wasmDeltas, options, wasmBase);
      expect(bitsOf(wasm)).toEqual(bitsOf(js));
    }
  });

  it.each([[0, 1], [0, 8], [3, 5], [5, 29], [8, 4096 + 13], [4294967296 * 2 - 3, 40]])(
    'drops by the counter-based stream (offset %d, n = %d)',
    (offset, n) => {
      const key = dropKey(11, 2, 'blocks.0.weight');
      for (const [probability, scale] of [[0.3, Math.fround(1 / 0.3)], [0.9, 1]]) {
        const values = randomValues(n, n);
        const js = values.slice();
        dropByStream(js, key, offset, keepThreshold(probability), scale);
        const [wasm] = inWasm([values]);
        dropByStream(wasm, key, offset, keepThreshold(probability), scale);
        expect(bitsOf(wasm)).toEqual(bitsOf(js));
        // the rule itself: kept exactly where the stream's word is below the threshold
        const words = streamWords(key, offset, new Uint32Array(n));
        for (let i = 0; i < n; i++) {
          expect(js[i]).toBe(words[i] < keepThreshold(probability) ? Math.fround(values[i] * scale) : 0);
        }
      }
    },
  );

  it('counts NaN and infinities', () => {
    const values = randomValues(1001, 5);
    values[3] = Number.NaN;
    values[500] = Infinity;
    values[1000] = -Infinity;
    const [wasm] = inWasm([values]);
    expect(wasmKernels().countNonFinite(wasm.byteOffset, wasm.length)).toBe(3);
  });
});
