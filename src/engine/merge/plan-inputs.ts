/** What planning a merge and planning a frankenmerge share: reading config.json, naming inputs, copy jobs. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, TensorLocation } from '../checkpoint/checkpoint';
import { MergeInputError } from '../errors';
import { NonFinitePolicy, TensorInput, TensorJob } from './tensor-job';
import { adaptedCheckpoint, checkAdapterFits, LoraAdapter, readLoraAdapter } from '../checkpoint/lora';

export interface PlanOptions {
  nonFinite?: NonFinitePolicy;
}

export function readArchitecture(checkpoint: Checkpoint): { architectures?: unknown; model_type?: unknown } | undefined {
  const path = join(checkpoint.directory, 'config.json');
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { architectures?: unknown; model_type?: unknown };
  } catch (err) {
    throw new MergeInputError(`${path}: is not valid JSON (${(err as Error).message})`);
  }
}

export function toInput(label: string, location: TensorLocation): TensorInput {
  const { file, name, offset, byteLength, dtype, shape, elements } = location;
  return { label, file, name, offset, byteLength, dtype, shape, elements };
}

/** A job that copies one input tensor unchanged. */
export function copyJob(name: string, input: TensorInput, options: PlanOptions): TensorJob {
  return {
    name,
    shape: input.shape,
    kind: 'copy',
    base: undefined,
    models: [input],
    method: 'copy',
    globalParameters: {},
    modelParameters: [],
    seed: 0,
    outDtype: input.dtype,
    nonFinite: options.nonFinite ?? 'error',
  };
}

/** A model to merge: a checkpoint, or a checkpoint with a LoRA adapter applied to it (its tensors the adapted ones). */
export interface ModelSource {
  checkpoint: Checkpoint;
  adapter?: LoraAdapter;
  /** How messages name it. */
  label: string;
}

/** A model that is `checkpoint` with the adapter at `adapterPath` applied (checked to fit first). */
export function adaptedSource(checkpoint: Checkpoint, adapterPath: string, label: string): ModelSource {
  const adapter = readLoraAdapter(adapterPath);
  checkAdapterFits(adapter, checkpoint);
  return { checkpoint: adaptedCheckpoint(checkpoint, adapter, label), adapter, label };
}

/** The input with its model's LoRA update for this tensor, when the adapter has one. */
export function withLora(input: TensorInput, source: ModelSource): TensorInput {
  const target = source.adapter?.targets.get(input.name);
  if (!target) return input;
  return { ...input, lora: { a: toInput(source.label, target.a), b: toInput(source.label, target.b), rank: source.adapter!.rank, scale: target.scale, transpose: target.transpose } };
}
