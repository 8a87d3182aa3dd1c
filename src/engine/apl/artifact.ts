/**
 * An importance analysis on disk: `<name>.safetensors` with one F32 vector per score over the
 * partitions (loss_increase, kl, gradient_signed, gradient_absolute, fisher — whichever were
 * measured — and the partition sizes),
 * and `<name>.json`, a summary per tensor group (mean, spread, top partitions) for people.
 */
import { writeFileSync } from 'node:fs';
import { openCheckpoint, TensorReader } from '../checkpoint/checkpoint';
import { writeSafetensorsFile } from '../checkpoint/writer';
import { CheckpointError } from '../errors';
import { PartitionLevel, PartitionScheme, PARTITION_LEVELS } from './partitions';

export const SCORE_NAMES = ['loss_increase', 'kl', 'gradient_signed', 'gradient_absolute', 'fisher'] as const;
export type ScoreName = (typeof SCORE_NAMES)[number];

export interface ImportanceArtifact {
  level: PartitionLevel;
  task: string;
  model: string;
  base: string;
  scores: Partial<Record<ScoreName, Float64Array>>;
  sizes: Float64Array;
  metadata: Record<string, string>;
}

function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function summarize(scheme: PartitionScheme, scores: Partial<Record<ScoreName, Float64Array>>, top = 5): Record<string, unknown> {
  const layers: Record<string, unknown> = {};
  scheme.groups.forEach((group, g) => {
    const label = group[0].replace(/\.weight$/, '');
    const members = scheme.level === 'model' ? [0] : Array.from({ length: scheme.count }, (_, k) => k).filter((k) => scheme.groupOf[k] === g);
    const perScore: Record<string, unknown> = {};
    for (const [name, values] of Object.entries(scores)) {
      const v = members.map((k) => values![k]);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const spread = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      const ranked = [...members].sort((a, b) => values![b] - values![a]).slice(0, top);
      perScore[name] = { mean, spread, top: ranked.map((k) => ({ partition: scheme.names[k], value: values![k] })) };
    }
    layers[label] = { partitions: members.length, ...perScore };
  });
  return { level: scheme.level, partitions: scheme.count, layers };
}

export function saveImportance(path: string, scheme: PartitionScheme, artifact: Omit<ImportanceArtifact, 'sizes' | 'level'>): { safetensors: string; summary: string } {
  const safetensors = path.endsWith('.safetensors') ? path : `${path}.safetensors`;
  const summaryPath = safetensors.replace(/\.safetensors$/, '.json');
  const tensors = [
    { name: 'partition_sizes', dtype: 'F32' as const, shape: [scheme.count], data: f32Bytes(scheme.sizes) },
    ...Object.entries(artifact.scores).map(([name, values]) => ({ name, dtype: 'F32' as const, shape: [scheme.count], data: f32Bytes(values!) })),
  ];
  writeSafetensorsFile(safetensors, tensors, { ...artifact.metadata, level: scheme.level, task: artifact.task, model: artifact.model, base: artifact.base, partition_names: JSON.stringify(scheme.names) });
  writeFileSync(summaryPath, JSON.stringify({ task: artifact.task, model: artifact.model, base: artifact.base, ...artifact.metadata, ...summarize(scheme, artifact.scores) }, null, 2) + '\n');
  return { safetensors, summary: summaryPath };
}

export function loadImportance(path: string): ImportanceArtifact {
  const checkpoint = openCheckpoint(path);
  const meta = checkpoint.metadata ?? {};
  const fail = (reason: string, tensor?: string): never => {
    throw new CheckpointError(path, reason, tensor);
  };
  if (!PARTITION_LEVELS.includes(meta.level as PartitionLevel)) fail(`__metadata__ level ${JSON.stringify(meta.level)} is not one of ${PARTITION_LEVELS.join(', ')}: not an importance artifact`);
  const reader = new TensorReader();
  const read = (name: string) => Float64Array.from(new Float32Array(reader.read(checkpoint.tensors.get(name)!).buffer));
  try {
    if (!checkpoint.tensors.has('partition_sizes')) fail('missing', 'partition_sizes');
    const sizes = read('partition_sizes');
    const scores: Partial<Record<ScoreName, Float64Array>> = {};
    for (const name of SCORE_NAMES) {
      if (!checkpoint.tensors.has(name)) continue;
      const values = read(name);
      if (values.length !== sizes.length) fail(`${values.length} values for ${sizes.length} partitions`, name);
      scores[name] = values;
    }
    return { level: meta.level as PartitionLevel, task: meta.task ?? '', model: meta.model ?? '', base: meta.base ?? '', scores, sizes, metadata: meta };
  } finally {
    reader.close();
  }
}
