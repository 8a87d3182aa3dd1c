/**
 * Accuracy and mean loss of a model's task head on a split, in batches. For a language model:
 * exact match of the greedy completion, and the mean NLL over the completion tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';
import { Model, toTensors } from '../families/model';
import { answeredExamples, logits, lossAndMisses, range, requireHead, scoredLogits, scoredTargets } from '../families/types';

export interface EvaluationResult {
  accuracy: number;
  loss: number;
  count: number;
  /** Labels the loss is the mean over: examples, or scored tokens. */
  scoredLabels: number;
}

export async function evaluate(model: Model, task: string, split: TaskSplit, batchSize = 1000): Promise<EvaluationResult> {
  const { family, config } = model;
  const classes = requireHead(config, task, model.path);
  const { tensors, lookup } = toTensors(model);
  let correct = 0;
  let lossSum = 0;
  let scoredLabels = 0;
  // A language model's output is a row per position: fewer sequences per batch.
  const perBatch = split.labelsPerExample && split.labelsPerExample > 1 ? Math.max(1, Math.floor(batchSize / 16)) : batchSize;
  try {
    for (let start = 0; start < split.count; start += perBatch) {
      const end = Math.min(split.count, start + perBatch);
      const targets = scoredTargets(split, range(start, end));
      const { lossSum: loss, misses } = tf.tidy(() => lossAndMisses(scoredLogits(logits(family, config, lookup, family.inputs(config, split, range(start, end), `${task} data`), task), targets), targets, classes));
      correct += answeredExamples(await misses.data(), targets);
      lossSum += (await loss.data())[0];
      scoredLabels += targets.labels.length;
      tf.dispose([loss, misses]);
    }
  } finally {
    tensors.forEach((t) => t.dispose());
  }
  return { accuracy: correct / split.count, loss: lossSum / Math.max(1, scoredLabels), count: split.count, scoredLabels };
}
