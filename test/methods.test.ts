/**
 * Every merge method against small cases computed by hand, and the kernels beneath them
 * (selection, seeded drops) against brute-force references.
 */
import { dropKey, streamWords, tensorRandom } from '../src/engine/kernels/random';
import { topKCut } from '../src/engine/kernels/select';
import { applyDrop, bernoulliRule } from '../src/engine/kernels/recipe';
import { dellaPrune } from '../src/engine/kernels/sparsify';
import { getMergeMethod, MERGE_METHODS } from '../src/engine/methods/registry';
import { ParameterValue } from '../src/engine/methods/types';

function defaults(defs: ReadonlyArray<{ name: string; default?: ParameterValue }>): Record<string, ParameterValue> {
  const values: Record<string, ParameterValue> = {};
  for (const d of defs) if (d.default !== undefined) values[d.name] = d.default;
  return values;
}

function merge(
  methodName: string,
  base: number[] | undefined,
  models: number[][],
  perModel: Array<Record<string, ParameterValue>>,
  global: Record<string, ParameterValue> = {},
  seed = 0,
): number[] {
  const method = getMergeMethod(methodName);
  const result = method.mergeTensor({
    name: 't',
    shape: [models[0].length],
    base: base ? Float32Array.from(base) : undefined,
    models: models.map((m) => Float32Array.from(m)),
    modelParameters: perModel.map((p) => ({ ...defaults(method.modelParameters), ...p })),
    globalParameters: { ...defaults(method.globalParameters), ...global },
    seed,
  });
  return Array.from(result);
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
}

const zeros = [0, 0, 0, 0, 0];
const ft1 = [1, -2, 3, 0.5, -0.1];
const ft2 = [-1, 1, -4, 0.2, 0.3];

describe('linear', () => {
  it('takes the weighted average, or the weighted sum without normalize', () => {
    expectClose(merge('linear', undefined, [[1, 2], [3, 6]], [{ weight: 1 }, { weight: 3 }]), [2.5, 5]);
    expectClose(merge('linear', undefined, [[1, 2], [3, 6]], [{ weight: 1 }, { weight: 3 }], { normalize: false }), [10, 20]);
  });
});

describe('task_arithmetic', () => {
  it('adds λ times the weighted task vectors to the base', () => {
    expectClose(merge('task_arithmetic', [1, 2], [[2, 2], [1, 4]], [{ weight: 0.5 }, { weight: 1 }], { lambda: 2 }), [2, 6]);
  });
  it('divides by the sum of weights when normalizing', () => {
    expectClose(merge('task_arithmetic', [1, 2], [[2, 2], [1, 4]], [{ weight: 0.5 }, { weight: 1 }], { lambda: 2, normalize: true }), [1 + 2 / 3, 2 + 8 / 3]);
  });
});

describe('ties', () => {
  it('trims to density, elects signs by weighted sum, and takes the disjoint mean', () => {
    // k = floor(0.6·5) = 3. δ1 keeps 3, -2, 1; δ2 keeps -4, -1, 1 (a tie at |1| keeps both, k=3).
    // Election [0, -1, -1, 0, 0] → + − − + +; disjoint means: 1, -2, -4, 0, 0.
    expectClose(merge('ties', zeros, [ft1, ft2], [{ weight: 1, density: 0.6 }, { weight: 1, density: 0.6 }]), [1, -2, -4, 0, 0]);
  });
  it('elects by count when consensus_method is count (a tied count elects +)', () => {
    expectClose(
      merge('ties', zeros, [ft1, ft2], [{ weight: 1, density: 0.6 }, { weight: 1, density: 0.6 }], { consensus_method: 'count' }),
      [1, 1, 3, 0, 0],
    );
  });
  it('weights the election and divides by the weights that agree', () => {
    // Weighted: [2,-4,6,0,0] and [-1,1,-4,0,0]; election sum [1,-3,2] → + − +; means 2/2, -4/2, 6/2.
    expectClose(merge('ties', zeros, [ft1, ft2], [{ weight: 2, density: 0.6 }, { weight: 1, density: 0.6 }]), [1, -2, 3, 0, 0]);
  });
  it('adds to the base and scales by λ', () => {
    expectClose(merge('ties', [1, 1, 1, 1, 1], [ft1.map((v) => v + 1), ft2.map((v) => v + 1)], [{ weight: 1, density: 0.6 }, { weight: 1, density: 0.6 }], { lambda: 0.5 }), [1.5, 0, -1, 1, 1]);
  });
});

describe('magnitude', () => {
  it('keeps the top-density magnitudes of each task vector (ties by position) and sums them', () => {
    // k = 2: δ1 → [0,-2,3,0,0]; δ2 → [-1,0,-4,0,0] (|-1| at index 0 wins the tie with |1| at 1).
    expectClose(merge('magnitude', zeros, [ft1, ft2], [{ weight: 1, density: 0.4 }, { weight: 1, density: 0.4 }]), [-1, -2, -1, 0, 0]);
  });
});

describe('breadcrumbs', () => {
  it('drops the gamma largest outliers and the smallest entries', () => {
    const delta = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    const result = merge('breadcrumbs', new Array(10).fill(0), [delta], [{ weight: 1, density: 0.5, gamma: 0.1 }]);
    expectClose(result, [0, 0, 0, 0, 0.5, 0.6, 0.7, 0.8, 0.9, 0]);
  });
  it('removes fewer outliers when density + gamma exceeds 1', () => {
    // target 3, gamma asks for 2 outliers, but only 4 − 3 = 1 entry may go: the largest.
    const delta = [0.1, 0.2, 0.3, 0.4];
    expectClose(merge('breadcrumbs', [0, 0, 0, 0], [delta], [{ weight: 1, density: 0.75, gamma: 0.5 }]), [0.1, 0.2, 0.3, 0]);
  });
});

describe('dare_linear and dare_ties', () => {
  const n = 100_000;
  const base = new Array(n).fill(0);
  const delta = Array.from({ length: n }, (_, i) => ((i % 7) - 3) * 0.01 + 0.001);

  it('drops at rate 1 − density, rescales survivors by 1/density, reproducibly from the seed', () => {
    const a = merge('dare_linear', base, [delta], [{ weight: 1, density: 0.3 }], {}, 11);
    const b = merge('dare_linear', base, [delta], [{ weight: 1, density: 0.3 }], {}, 11);
    const c = merge('dare_linear', base, [delta], [{ weight: 1, density: 0.3 }], {}, 12);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    let kept = 0;
    let wrongScale = 0;
    a.forEach((v, i) => {
      if (v !== 0) {
        kept++;
        if (Math.abs(v - delta[i] / 0.3) > 1e-5) wrongScale++;
      }
    });
    expect(wrongScale).toBe(0);
    // 3.4 standard deviations of a Binomial(1e5, 0.3) proportion
    expect(Math.abs(kept / n - 0.3)).toBeLessThan(0.005);
  });

  it('does not rescale when rescale is false', () => {
    const a = merge('dare_linear', base, [delta], [{ weight: 1, density: 0.5 }], { rescale: false }, 3);
    expect(a.filter((v, i) => v !== 0 && Math.abs(v - delta[i]) > 1e-6)).toEqual([]);
    expect(a.filter((v) => v !== 0).length).toBeGreaterThan(0);
  });

  it('draws independent masks per model and elects signs in dare_ties', () => {
    const negative = delta.map((v) => -v * 2);
    const merged = merge('dare_ties', base, [delta, negative], [{ weight: 1, density: 0.5 }, { weight: 1, density: 0.5 }], {}, 5);
    // Where both survive, the larger-magnitude (negative) side wins the election.
    const one = merge('dare_linear', base, [delta], [{ weight: 1, density: 0.5 }], {}, 5);
    let negativeWins = 0;
    let unexplained = 0;
    for (let i = 0; i < n; i++) {
      if (one[i] !== 0 && merged[i] !== 0 && Math.sign(merged[i]) !== Math.sign(one[i])) negativeWins++;
      // Model 0's draws are the same stream as in dare_linear: a survivor there is either kept
      // (positive side won) or outvoted by model 1's survivor (−2× the delta, rescaled alike).
      if (one[i] !== 0 && merged[i] !== 0 && ![one[i], -2 * one[i]].some((v) => Math.abs(v - merged[i]) < 1e-5)) unexplained++;
    }
    expect(unexplained).toBe(0);
    expect(negativeWins).toBeGreaterThan(n * 0.2);
  });
});

describe('della', () => {
  it('keeps with probability rising linearly with magnitude rank, from density−ε to density+ε', () => {
    const rows = 4000;
    const width = 5;
    const delta = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) for (let j = 0; j < width; j++) delta[r * width + j] = (j + 1) * (r % 2 ? 1 : -1);
    const original = delta.slice();
    dellaPrune(delta, [rows, width], 0.5, 0.4, dropKey(9, 0, 'w'), true);
    const keptAt = new Array(width).fill(0);
    const expected = [0.1, 0.3, 0.5, 0.7, 0.9];
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < width; j++) {
        const v = delta[r * width + j];
        if (v !== 0) {
          keptAt[j]++;
          expect(v).toBeCloseTo(original[r * width + j] / expected[j], 4);
        }
      }
    }
    keptAt.forEach((k, j) => expect(Math.abs(k / rows - expected[j])).toBeLessThan(0.03));
  });

  it('rejects density ± epsilon outside (0, 1)', () => {
    const method = getMergeMethod('della');
    expect(method.checkParameters!({}, { weight: 1, density: 0.1, epsilon: 0.15 })).toMatch(/must lie inside \(0, 1\)/);
    expect(method.checkParameters!({}, { weight: 1, density: 0.5, epsilon: 0.15 })).toBeUndefined();
  });
});

describe('della and della_linear, hand-computed from the seeded stream', () => {
  // Row [0.1, −0.4, 0.3, 0.2]: magnitude ranks 1, 4, 3, 2; with density 0.5 and ε 0.2 the keep
  // probabilities run linearly over the ranks from 0.3 to 0.7.
  const deltas = [
    [0.1, -0.4, 0.3, 0.2],
    [-0.3, 0.2, -0.1, 0.4],
  ];
  const probabilities = [
    [0.3, 0.7, 0.3 + (2 / 3) * 0.4, 0.3 + (1 / 3) * 0.4],
    [0.3 + (2 / 3) * 0.4, 0.3 + (1 / 3) * 0.4, 0.3, 0.7],
  ];
  /** Model m's pruned, rescaled delta: kept where its draw (the engine's Threefry stream, tested against known vectors) is below the probability. */
  const pruned = (m: number, seed: number) => {
    const words = streamWords(dropKey(seed, m, 't'), 0, new Uint32Array(4));
    return deltas[m].map((v, j) => (words[j] / 4294967296 < probabilities[m][j] ? Math.fround(v) / probabilities[m][j] : 0));
  };
  const seed = 4;
  const params = [{ weight: 0.5, density: 0.5, epsilon: 0.2 }, { weight: 2, density: 0.5, epsilon: 0.2 }];

  it('della_linear: the weighted sum of each model\'s MagPrune-d delta', () => {
    const [a, b] = [pruned(0, seed), pruned(1, seed)];
    // Not vacuous: this seed keeps some entries and drops others.
    expect([...a, ...b].some((v) => v === 0) && [...a, ...b].some((v) => v !== 0)).toBe(true);
    expectClose(merge('della_linear', [0, 0, 0, 0], deltas, params, {}, seed), a.map((v, j) => 0.5 * v + 2 * b[j]));
    // Without rescale the survivors keep their values.
    const raw = (m: number) => pruned(m, seed).map((v, j) => (v === 0 ? 0 : deltas[m][j]));
    expectClose(merge('della_linear', [0, 0, 0, 0], deltas, params, { rescale: false }, seed), raw(0).map((v, j) => 0.5 * v + 2 * raw(1)[j]));
  });

  it('della: the same pruning, then TIES: the weighted sum elects the sign, agreeing entries are averaged by their weights', () => {
    const [a, b] = [pruned(0, seed), pruned(1, seed)];
    const expected = a.map((_, j) => {
      const sign = Math.sign(0.5 * a[j] + 2 * b[j]) || 1;
      let sum = 0;
      let weights = 0;
      for (const [w, v] of [[0.5, a[j]], [2, b[j]]]) if (v !== 0 && Math.sign(v) === sign) (sum += w * v), (weights += w);
      return weights > 0 ? sum / weights : 0;
    });
    expectClose(merge('della', [0, 0, 0, 0], deltas, params, {}, seed), expected);
    // λ scales the result, and the base is added (the models are base + delta).
    const models = deltas.map((d) => d.map((v) => Math.fround(1 + v)));
    const close = (actual: number[], wanted: number[]) => actual.forEach((v, j) => expect(Math.abs(v - wanted[j])).toBeLessThan(1e-6));
    close(merge('della', [1, 1, 1, 1], models, params, { lambda: 2 }, seed), expected.map((v) => 1 + 2 * v));
  });
});

describe('breadcrumbs_ties', () => {
  it('drops each model\'s outliers and smallest entries, then elects signs and sums the agreeing ones', () => {
    const up = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    const down = up.map((v) => -(1.1 - v)); // −1.0 … −0.1
    // Kept: up at 4..8 (0.5 … 0.9); down at 1..5 (−0.9 … −0.5). Index 4: 0.5 − 0.6 elects −;
    // index 5: 0.6 − 0.5 elects +. Breadcrumbs-TIES does not normalize: the agreeing values are summed.
    const result = merge('breadcrumbs_ties', new Array(10).fill(0), [up, down], [{ weight: 1, density: 0.5, gamma: 0.1 }, { weight: 1, density: 0.5, gamma: 0.1 }]);
    expectClose(result, [0, -0.9, -0.8, -0.7, -0.6, 0.6, 0.7, 0.8, 0.9, 0]);
  });
});

describe('slerp', () => {
  it('interpolates along the great circle between orthogonal tensors, and linearly between colinear ones', () => {
    // [1, 0] and [0, 1]: θ = π/2, so t = 1/3 gives [cos(π/6), sin(π/6)].
    expectClose(merge('slerp', [1, 0], [[0, 1]], [{}], { t: 1 / 3 }), [Math.cos(Math.PI / 6), Math.sin(Math.PI / 6)]);
    // Lengths are kept in the mix, not normalised away: [2, 0] and [0, 1] at t = 0.5 give sin(π/4)·(v0 + v1)/sin(π/2).
    expectClose(merge('slerp', [2, 0], [[0, 1]], [{}], { t: 0.5 }), [2 * Math.SQRT1_2, Math.SQRT1_2]);
    // Colinear (cos > 0.9995): (1 − t)·v0 + t·v1.
    expectClose(merge('slerp', [1, 2], [[2, 4]], [{}], { t: 0.25 }), [1.25, 2.5]);
    // t = 0 is the base, t = 1 the other model.
    expectClose(merge('slerp', [0.3, -0.2, 0.9], [[-0.5, 0.1, 0.4]], [{}], { t: 0 }), [0.3, -0.2, 0.9]);
    expectClose(merge('slerp', [0.3, -0.2, 0.9], [[-0.5, 0.1, 0.4]], [{}], { t: 1 }), [-0.5, 0.1, 0.4]);
  });
});

describe('nearswap', () => {
  it('takes the other model where the two are within t, and moves toward it by t / |difference| elsewhere', () => {
    // |diff| = 0.05, 0.2, 0, 1 with t = 0.1: weights 1 (clamped), 0.5, 1 (no difference), 0.1.
    expectClose(merge('nearswap', [0, 0, 0.5, 1], [[0.05, 0.2, 0.5, 0]], [{}], { t: 0.1 }), [0.05, 0.1, 0.5, 0.9]);
  });
});

describe('model_stock', () => {
  it('pulls the average toward the base by t = N·cos θ / (1 + (N − 1)·cos θ), per tensor or per row', () => {
    // Task vectors [1, 0] and [0, 1]: cos θ = 0, t = 0, the base. [1, 1] and [1, 1]: cos θ = 1, t = 1, the average.
    expectClose(merge('model_stock', [5, 5], [[6, 5], [5, 6]], [{}, {}]), [5, 5]);
    expectClose(merge('model_stock', [0, 0], [[1, 1], [1, 1]], [{}, {}]), [1, 1]);
    // At 60° (cos ½) with N = 2: t = 1/1.5 = 2/3 of the average [0.75, √3/4].
    const average = [(1 + 0.5) / 2, Math.sqrt(3) / 4];
    expectClose(merge('model_stock', [0, 0], [[1, 0], [0.5, Math.sqrt(3) / 2]], [{}, {}]), average.map((v) => (2 / 3) * v));
  });

  it('with filter_wise, takes one angle per row', () => {
    const method = getMergeMethod('model_stock');
    const result = method.mergeTensor({
      name: 'w',
      shape: [2, 2],
      base: Float32Array.from([0, 0, 0, 0]),
      // Row 0: task vectors orthogonal (t = 0); row 1: equal (t = 1).
      models: [Float32Array.from([1, 0, 2, 2]), Float32Array.from([0, 1, 2, 2])],
      modelParameters: [{}, {}],
      globalParameters: { filter_wise: true },
      seed: 0,
    });
    expectClose(Array.from(result), [0, 0, 2, 2]);
  });
});

describe('top-k selection', () => {
  function reference(values: Float32Array, k: number): number {
    const magnitudes = Array.from(values, Math.abs).sort((a, b) => b - a);
    return magnitudes[k - 1];
  }
  it('finds the k-th largest magnitude on random data with ties and signed zeros', () => {
    const random = tensorRandom(1, 0, 'select');
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + (random.nextUint32() % 300);
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const r = random.nextUint32();
        values[i] = r % 5 === 0 ? (r % 2 ? -0 : 0) : ((r % 13) - 6) * (r % 3 === 0 ? 1 : 0.37);
      }
      const k = 1 + (random.nextUint32() % n);
      const cut = topKCut(new Uint32Array(values.buffer), k);
      const threshold = new Float32Array(new Uint32Array([cut.thresholdBits]).buffer)[0];
      expect(threshold).toBe(reference(values, k));
      const above = Array.from(values).filter((v) => Math.abs(v) > threshold).length;
      expect(cut.takeAtThreshold).toBe(k - above);
    }
  });
});

describe('registry', () => {
  it('lists each method once, with declared defaults of the declared type', () => {
    const names = MERGE_METHODS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['linear', 'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'magnitude', 'breadcrumbs', 'della', 'slerp', 'model_stock', 'nearswap']));
    for (const m of MERGE_METHODS) {
      for (const p of [...m.globalParameters, ...m.modelParameters]) {
        if (p.default !== undefined) expect(typeof p.default).toBe(p.type);
      }
    }
  });
  it('fails clearly on an unknown name', () => {
    expect(() => getMergeMethod('slerpy')).toThrow(/unknown merge method "slerpy"; known: linear, task_arithmetic/);
  });
});

describe('seeded streams', () => {
  it('depend on seed, model index and tensor name only', () => {
    const draw = (seed: number, model: number, name: string) => {
      const r = tensorRandom(seed, model, name);
      return [r.nextUint32(), r.nextUint32(), r.nextUint32()];
    };
    expect(draw(1, 0, 'a')).toEqual(draw(1, 0, 'a'));
    expect(draw(1, 0, 'a')).not.toEqual(draw(2, 0, 'a'));
    expect(draw(1, 0, 'a')).not.toEqual(draw(1, 1, 'a'));
    expect(draw(1, 0, 'a')).not.toEqual(draw(1, 0, 'b'));
    const delta = new Float32Array(1000).fill(1);
    applyDrop(delta, bernoulliRule(0.5, dropKey(4, 0, 'x'), false), [delta.length]);
    expect(delta.some((v) => v === 0) && delta.some((v) => v === 1)).toBe(true);
  });
});
