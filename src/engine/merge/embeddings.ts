/**
 * Embedding tensors under `tokenizer_source`: which tensors have a row per token, and the pass
 * over a planned merge that lays their rows out in the output vocabulary's order (the jobs carry
 * the row maps; the rows are moved as each tensor is read, in tensor-job.ts).
 */
import { dirname } from 'node:path';
import { Checkpoint } from '../checkpoint/checkpoint';
import { dtypeSize } from '../checkpoint/dtype';
import { MergeInputError } from '../errors';
import { buildVocabulary, embeddingRows, MergedVocabulary, TokenEmbeddingSource, VocabularyModel } from '../vocabulary/merge-vocabulary';
import type { MergePlan } from './plan';
import { TensorJob } from './tensor-job';
import { readArchitecture } from './plan-inputs';
import { layerPositions, resolveRaw } from './config';

/**
 * Tensors with one row per token, in the architectures whose names the engine knows:
 * Llama/Mistral/Qwen2 (`model.embed_tokens`, `lm_head`), BERT/RoBERTa (`*.embeddings.word_embeddings`,
 * the MLM head's decoder and bias), GPT-2/NeoX style (`wte`, `embed_in`, `embed_out`).
 */
const EMBEDDING_TENSOR = [
  /(^|\.)embed_tokens\.weight$/,
  /(^|\.)word_embeddings\.weight$/,
  /(^|\.)(wte|embed_in)\.weight$/,
  /^(lm_head|embed_out)\.weight$/,
  /^lm_head\.decoder\.(weight|bias)$/,
  /^lm_head\.bias$/,
  /^cls\.predictions\.(decoder\.weight|decoder\.bias|bias)$/,
];

export function isEmbeddingTensor(name: string): boolean {
  return EMBEDDING_TENSOR.some((pattern) => pattern.test(name));
}

/** Shapes that agree but for the rows (the vocabulary), when the tensor is an embedding. */
export function sameBesidesRows(name: string, a: readonly number[], b: readonly number[]): boolean {
  return isEmbeddingTensor(name) && a.length === b.length && a.length >= 1 && a.slice(1).every((d, i) => d === b[i + 1]);
}

/** A model's embedding rows: config.json vocab_size, or the rows of its first embedding tensor. */
function rowsOf(checkpoint: Checkpoint): number {
  const fromConfig = (readArchitecture(checkpoint) as { vocab_size?: unknown } | undefined)?.vocab_size;
  if (typeof fromConfig === 'number') return fromConfig;
  const name = checkpoint.names.find(isEmbeddingTensor);
  if (!name) throw new MergeInputError(`${checkpoint.path}: tokenizer_source needs the token embeddings, and no tensor is one (looked for ${EMBEDDING_TENSOR.map((p) => p.source).join(', ')})`);
  return checkpoint.tensors.get(name)!.shape[0];
}

/**
 * Builds the output vocabulary and gives every embedding job its row maps, resizing its output
 * to the vocabulary's rows. With embed_slerp the embedding jobs SLERP the base and the other model.
 */
export function applyVocabulary(plan: MergePlan, checkpoints: readonly Checkpoint[]): MergedVocabulary | undefined {
  const { config } = plan;
  const settings = config.tokenizer;
  if (!settings) return undefined;
  const directoryOf = new Map<string, string>(checkpoints.map((c) => [c.path, c.directory]));
  const models: VocabularyModel[] = [];
  for (const checkpoint of checkpoints) {
    if (!models.some((m) => m.directory === checkpoint.directory)) models.push({ directory: checkpoint.directory, rows: rowsOf(checkpoint) });
  }
  const baseDirectory = config.baseModel ? directoryOf.get(config.baseModel) : undefined;
  const base = models.find((m) => m.directory === baseDirectory) ?? models[0];
  const dir = (model: string): string => directoryOf.get(model) ?? model;
  const local = { ...settings, source: settings.source.kind === 'model' ? { kind: 'model' as const, model: dir(settings.source.model) } : settings.source, tokens: new Map([...settings.tokens].map(([token, entry]) => [token, { ...entry, source: localSource(entry.source, dir) }])) };
  const merged = buildVocabulary(local, models, base);
  const embeddingJobs = plan.jobs.filter((job) => job.kind === 'merge' && isEmbeddingTensor(job.name));
  if (embeddingJobs.length === 0) throw new MergeInputError(`tokenizer_source: no tensor of ${base.directory} is a token embedding (looked for ${EMBEDDING_TENSOR.map((p) => p.source).join(', ')})`);
  const position = layerPositions(plan.jobs.map((j) => j.name));
  for (const job of embeddingJobs) {
    const inputs = job.base ? [job.base, ...job.models] : job.models;
    const width = job.shape.slice(1).reduce((a, b) => a * b, 1);
    const rows = embeddingRows(merged, local, inputs.map((input) => dirname(input.file)), inputs.map((input) => input.shape[0]), baseDirectory, job.name);
    if (config.embedSlerp !== undefined) rows.slerpT = resolveRaw(config.embedSlerp, job.name, position(job.name)) as number;
    setRows(plan, job, rows.rows, width);
    job.embedding = rows;
  }
  return merged;
}

function localSource(source: TokenEmbeddingSource, dir: (model: string) => string): TokenEmbeddingSource {
  return source.kind === 'zero' ? source : { ...source, model: dir(source.model) };
}

/** The job's output (and the plan's spec and byte count for it) with `rows` rows. */
function setRows(plan: MergePlan, job: TensorJob, rows: number, width: number): void {
  const shape = [rows, ...job.shape.slice(1)];
  const spec = plan.specs.find((s) => s.name === job.name)!;
  plan.outputBytes += (rows - job.shape[0]) * width * dtypeSize(spec.dtype);
  spec.shape = shape;
  job.shape = shape;
}

/** config.json of the output with its vocabulary's size. */
export function withVocabSize(json: Record<string, unknown>, merged: MergedVocabulary): Record<string, unknown> {
  return { ...json, vocab_size: merged.rows };
}
