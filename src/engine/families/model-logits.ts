/**
 * A model's logits on given inputs, for checking parity with other implementations
 * (`apl-merge logits`): token id sequences for the encoder and decoder families, or examples of a
 * task data file (for the MLP, whose inputs are images). Every input error names the sequence,
 * position or file.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { getSplit, loadTaskData, TaskSplit } from '../data/task-data';
import { Model, toTensors } from './model';
import { logits, range } from './types';

export type LogitsInput = { tokensFile: string } | { taskDataFile: string; split: string; count?: number };

export interface ModelLogits {
  /** [batch, classes] for classifiers, [batch, position, vocabulary] for language models. */
  shape: number[];
  values: Float32Array;
  task: string;
}

/** A JSON array of equal-length arrays of token ids, as a split of unlabelled sequences. */
export function readTokenFile(file: string): TaskSplit {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a JSON file of token id arrays (${(err as Error).message})`);
  }
  if (!Array.isArray(json) || json.length === 0) throw new Error(`${file}: must be a non-empty JSON array of token id arrays`);
  const rows = json as unknown[];
  const first = rows[0];
  if (!Array.isArray(first) || first.length === 0) throw new Error(`${file}: sequence 0 must be a non-empty array of token ids`);
  const length = first.length;
  const ids = new Int32Array(rows.length * length);
  rows.forEach((row, i) => {
    if (!Array.isArray(row)) throw new Error(`${file}: sequence ${i} is not an array of token ids`);
    if (row.length !== length) throw new Error(`${file}: sequence ${i} has ${row.length} tokens, sequence 0 has ${length}: all must have the same length`);
    row.forEach((t: unknown, j) => {
      if (!Number.isInteger(t) || (t as number) < 0 || (t as number) > 2 ** 31 - 1) throw new Error(`${file}: sequence ${i} position ${j}: ${JSON.stringify(t)} is not a token id (a non-negative integer)`);
      ids[i * length + j] = t as number;
    });
  });
  return { inputs: ids, exampleShape: [length], labels: new Int32Array(rows.length), count: rows.length };
}

function checkTokenIds(model: Model, split: TaskSplit, file: string): void {
  const vocabulary = model.config.languageModel?.vocabulary ?? (model.config as { vocabSize?: number }).vocabSize;
  if (vocabulary === undefined) return;
  const length = split.exampleShape[0];
  const bad = split.inputs.findIndex((t) => t >= vocabulary);
  if (bad >= 0) throw new Error(`${file}: sequence ${Math.floor(bad / length)} position ${bad % length}: token id ${split.inputs[bad]} is outside the model's vocabulary of ${vocabulary}`);
}

/** The task whose head gives the logits: the one named, the model's only one, or a language model's one head. */
function headTask(model: Model, task: string | undefined): string {
  const heads = Object.keys(model.config.tasks);
  if (task !== undefined) {
    if (!model.config.languageModel && !heads.includes(task)) throw new Error(`${model.path}: has no head for task "${task}" (heads: ${heads.join(', ')})`);
    return task;
  }
  if (model.config.languageModel) return 'lm';
  if (heads.length !== 1) throw new Error(`${model.path}: has ${heads.length} heads (${heads.join(', ')}); name one with --task`);
  return heads[0];
}

export async function modelLogits(model: Model, input: LogitsInput, task?: string): Promise<ModelLogits> {
  const head = headTask(model, task);
  let split: TaskSplit;
  let source: string;
  if ('tokensFile' in input) {
    split = readTokenFile(input.tokensFile);
    source = input.tokensFile;
    checkTokenIds(model, split, source);
  } else {
    const full = getSplit(loadTaskData(input.taskDataFile), input.split);
    const count = Math.min(full.count, input.count ?? full.count);
    const per = full.inputs.length / full.count;
    split = { ...full, inputs: full.inputs.subarray(0, count * per), labels: full.labels.subarray(0, count * (full.labelsPerExample ?? 1)), count };
    source = `${input.taskDataFile} (${input.split} split)`;
  }
  const { family, config } = model;
  const { tensors, lookup } = toTensors(model);
  try {
    const out = tf.tidy(() => logits(family, config, lookup, family.inputs(config, split, range(0, split.count), source), head));
    const values = (await out.data()) as Float32Array;
    const classes = out.shape[out.shape.length - 1];
    out.dispose();
    const shape = config.languageModel ? [split.count, split.exampleShape[0], classes] : [split.count, classes];
    return { shape, values, task: head };
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}

/** Nested arrays [batch][position][vocab] (or [batch][classes]) of the logits. */
export function nestedLogits({ shape, values }: ModelLogits): unknown[] {
  const nest = (offset: number, axis: number): unknown[] => {
    const stride = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: shape[axis] }, (_, i) => (axis === shape.length - 1 ? values[offset + i] : nest(offset + i * stride, axis + 1)));
  };
  return nest(0, 0);
}
