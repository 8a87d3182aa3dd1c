/**
 * A task-vector merge of one tensor, described as data: for each model a drop rule (which
 * entries of its task vector survive, and their scale), optional per-row weights, and how the
 * survivors are combined. Methods build recipes (src/engine/methods); the CPU executes them here
 * and the GPU in src/engine/gpu, so both run the same math from one description.
 */
import { combineTaskVectors, ConsensusMethod, subtractInPlace } from './combine';
import { StreamKey, streamWords } from './random';
import { breadcrumbsPrune, dellaPrune, dropByStream, keepLargest, keepThreshold } from './sparsify';

export type DropRule =
  /** The whole task vector survives. */
  | { kind: 'keep' }
  /** Nothing survives. */
  | { kind: 'zero' }
  /** The `keepCount` largest magnitudes survive (ties broken by position), times `scale`. */
  | { kind: 'magnitude'; keepCount: number; scale: number }
  /** Entry i survives when word i of the key's stream is below `threshold`, times `scale` (DARE). */
  | { kind: 'bernoulli'; key: StreamKey; threshold: number; scale: number }
  /** As 'bernoulli' with the keep probability of each row (APL's stochastic drop). */
  | { kind: 'rowBernoulli'; key: StreamKey; rates: Float32Array }
  /**
   * APL's stochastic drop at unit level, for a weight whose columns are hidden units: entry (i, j)
   * survives at the rate `overlap` makes of rowRates[i] and columnRates[j] (columnRates[j] alone
   * without row rates), by the key's stream, rescaled by 1 / rate. Equal rates give that rate, as at
   * row level.
   */
  | { kind: 'unitBernoulli'; key: StreamKey; rowRates?: Float32Array; columnRates: Float32Array; overlap: UnitOverlap }
  /** In each row, the round(rate·length) largest magnitudes survive (APL's deterministic drop). */
  | { kind: 'rowTopK'; rates: Float32Array }
  | { kind: 'breadcrumbs'; density: number; gamma: number }
  | { kind: 'della'; density: number; epsilon: number; key: StreamKey; rescale: boolean };

export interface ModelRecipe {
  weight: number;
  drop: DropRule;
  /** Multiplies each row of the survivors (APL's task competition). */
  rowWeights?: Float32Array;
}

export interface TaskVectorRecipe {
  models: ModelRecipe[];
  consensus: ConsensusMethod | undefined;
  normalize: boolean;
  lambda: number;
  /**
   * The models' own values are combined, over a base of zeros (linear: a weighted average is a
   * task-vector sum with the origin as base). The base model, if there is one, is not an input.
   */
  withoutBase?: boolean;
}

/**
 * The survivors' scale when rescaling by 1/density, as float32: the product of two float32 values
 * rounds identically in JS, WASM and WGSL.
 */
function rescaleFactor(density: number, rescale: boolean): number {
  return Math.fround(rescale && density > 0 ? 1 / density : 1);
}

/** TIES' trim: the floor(density·n) largest magnitudes of n survive (all of them at density ≥ 1). */
export function magnitudeRule(density: number, elements: number, rescale = false): DropRule {
  if (density >= 1) return { kind: 'keep' };
  return { kind: 'magnitude', keepCount: Math.floor(density * elements), scale: rescaleFactor(density, rescale) };
}

/** DARE: each entry survives with probability `density`, by the key's stream. */
export function bernoulliRule(density: number, key: StreamKey, rescale: boolean): DropRule {
  if (density >= 1) return { kind: 'keep' };
  return { kind: 'bernoulli', key, threshold: keepThreshold(density), scale: rescaleFactor(density, rescale) };
}

/** How many entries of a row of `length` APL's deterministic drop keeps at keep-rate `rate`. */
export function rowKeepCount(rate: number, length: number): number {
  return Math.max(0, Math.min(length, Math.round(rate * length)));
}

/** Per-row keep threshold and float32 scale of a row rate; a rate ≥ 1 keeps the row unscaled. */
export function rowDrop(rate: number): { keepAll: boolean; threshold: number; scale: number } {
  if (rate >= 1) return { keepAll: true, threshold: 0, scale: 1 };
  return { keepAll: false, threshold: keepThreshold(rate), scale: rate > 0 ? Math.fround(1 / rate) : 0 };
}

/**
 * How an entry in two units (a row of one, a column of another) takes its keep-rate from theirs:
 * geometric, √(r·c) — an entry of a unit dropped whole is dropped; mean, (r + c) / 2 — the
 * expected density of a layer is the units' size-weighted mean rate, as at row level.
 */
export type UnitOverlap = 'geometric' | 'mean';

/** The keep-rate of an entry in a row of rate `rowRate` (undefined: the row is no partition) and a column of `columnRate`. */
export function unitKeepRate(rowRate: number | undefined, columnRate: number, overlap: UnitOverlap): number {
  if (rowRate === undefined) return columnRate;
  return overlap === 'mean' ? (rowRate + columnRate) / 2 : Math.sqrt(rowRate * columnRate);
}

/** 'unitBernoulli': each entry kept by the stream at its own rate, rescaled. */
function dropUnits(delta: Float32Array, rule: Extract<DropRule, { kind: 'unitBernoulli' }>): void {
  const { columnRates, rowRates } = rule;
  const width = columnRates.length;
  const words = new Uint32Array(width);
  for (let r = 0; r < delta.length / width; r++) {
    streamWords(rule.key, r * width, words);
    for (let c = 0; c < width; c++) {
      const { keepAll, threshold, scale } = rowDrop(unitKeepRate(rowRates?.[r], columnRates[c], rule.overlap));
      const j = r * width + c;
      if (!keepAll) delta[j] = words[c] < threshold ? delta[j] * scale : 0;
    }
  }
}

/** Keeps, in each row, the round(rate·length) largest magnitudes (ties by position), unscaled. */
function keepLargestPerRow(delta: Float32Array, rates: Float32Array): void {
  const rowLength = delta.length / rates.length;
  for (let r = 0; r < rates.length; r++) {
    const keep = rowKeepCount(rates[r], rowLength);
    if (keep === rowLength) continue;
    keepLargest(delta.subarray(r * rowLength, (r + 1) * rowLength), keep, 1);
  }
}

/** Applies one drop rule to a task vector in place. */
export function applyDrop(delta: Float32Array, rule: DropRule, shape: readonly number[]): void {
  switch (rule.kind) {
    case 'keep':
      return;
    case 'zero':
      delta.fill(0);
      return;
    case 'magnitude':
      keepLargest(delta, rule.keepCount, rule.scale);
      return;
    case 'bernoulli':
      dropByStream(delta, rule.key, 0, rule.threshold, rule.scale);
      return;
    case 'rowBernoulli': {
      const rowLength = delta.length / rule.rates.length;
      for (let r = 0; r < rule.rates.length; r++) {
        const { keepAll, threshold, scale } = rowDrop(rule.rates[r]);
        if (!keepAll) dropByStream(delta.subarray(r * rowLength, (r + 1) * rowLength), rule.key, r * rowLength, threshold, scale);
      }
      return;
    }
    case 'unitBernoulli':
      dropUnits(delta, rule);
      return;
    case 'rowTopK':
      keepLargestPerRow(delta, rule.rates);
      return;
    case 'breadcrumbs':
      breadcrumbsPrune(delta, rule.density, rule.gamma);
      return;
    case 'della':
      dellaPrune(delta, shape, rule.density, rule.epsilon, rule.key, rule.rescale);
      return;
  }
}

/** Multiplies row r of `values` by weights[r] (float32 products, as on the GPU). */
export function scaleRows(values: Float32Array, weights: Float32Array): void {
  const rowLength = values.length / weights.length;
  for (let r = 0; r < weights.length; r++) {
    const w = weights[r];
    if (w === 1) continue;
    for (let j = r * rowLength; j < (r + 1) * rowLength; j++) values[j] *= w;
  }
}

/**
 * Runs a recipe on the CPU: task vectors (models − base, in place), drops, row weights, then the
 * combination, written over `base` (zeros first when the recipe is without a base).
 */
export function runRecipe(recipe: TaskVectorRecipe, base: Float32Array, models: Float32Array[], shape: readonly number[], roundToOdd = false): Float32Array {
  if (recipe.withoutBase) base.fill(0);
  models.forEach((delta, t) => {
    if (!recipe.withoutBase) subtractInPlace(delta, base);
    const { drop, rowWeights } = recipe.models[t];
    applyDrop(delta, drop, shape);
    if (rowWeights) scaleRows(delta, rowWeights);
  });
  return combineTaskVectors(
    base,
    models,
    { weights: recipe.models.map((m) => m.weight), consensus: recipe.consensus, normalize: recipe.normalize, lambda: recipe.lambda, roundToOdd },
    base,
  );
}
