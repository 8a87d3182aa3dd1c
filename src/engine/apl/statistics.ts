/**
 * What a dashboard draws from an importance artifact without downloading it: per layer (tensor
 * group) the mean, spread, extremes and top partitions of one score, and a histogram of all
 * partitions' scores in equal-width bins between the smallest and the largest.
 */
import { CheckpointError } from '../errors';
import { ImportanceArtifact } from './artifact';

export interface PartitionScore {
  partition: string;
  value: number;
}

export interface LayerImportance {
  layer: string;
  partitions: number;
  mean: number;
  spread: number;
  min: number;
  max: number;
  top: PartitionScore[];
}

export interface HistogramBin {
  lower: number;
  upper: number;
  count: number;
}

/** The partition names an artifact records ("label[row]" at row level, "label" at layer level). */
export function partitionNames(artifact: ImportanceArtifact, path: string): string[] {
  let names: unknown;
  try {
    names = JSON.parse(artifact.metadata.partition_names ?? 'null');
  } catch {
    names = null;
  }
  if (!Array.isArray(names) || names.length !== artifact.sizes.length || !names.every((n) => typeof n === 'string')) {
    throw new CheckpointError(path, `__metadata__ partition_names does not list the ${artifact.sizes.length} partitions`);
  }
  return names as string[];
}

/** Per layer, in the order the layers first appear: statistics of its partitions' scores. */
export function layerImportance(names: readonly string[], values: Float64Array, top = 5): LayerImportance[] {
  const members = new Map<string, number[]>();
  names.forEach((name, k) => {
    const layer = name.replace(/\[\d+\]$/, '');
    members.set(layer, [...(members.get(layer) ?? []), k]);
  });
  return [...members].map(([layer, ks]) => {
    const v = ks.map((k) => values[k]);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return {
      layer,
      partitions: ks.length,
      mean,
      spread: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length),
      min: Math.min(...v),
      max: Math.max(...v),
      top: [...ks].sort((a, b) => values[b] - values[a]).slice(0, top).map((k) => ({ partition: names[k], value: values[k] })),
    };
  });
}

/** `bins` equal-width bins from the smallest score to the largest (the last one closed); one bin when all are equal. */
export function histogram(values: Float64Array, bins: number): HistogramBin[] {
  if (!Number.isInteger(bins) || bins < 1 || bins > 1000) throw new RangeError(`bins must be a whole number from 1 to 1000, got ${bins}`);
  if (values.length === 0) return [];
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  if (min === max) return [{ lower: min, upper: max, count: values.length }];
  const width = (max - min) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - min) / width))]++;
  return counts.map((count, b) => ({ lower: min + b * width, upper: b === bins - 1 ? max : min + (b + 1) * width, count }));
}
