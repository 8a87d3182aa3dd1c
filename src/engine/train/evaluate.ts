/** Accuracy and mean loss of a model's task head on a split, in batches. */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';
import { Model, toTensors } from '../families/model';
import { logits, range } from '../families/types';

export interface EvaluationResult {
  accuracy: number;
  loss: number;
  count: number;
}

export async function evaluate(model: Model, task: string, split: TaskSplit, batchSize = 1000): Promise<EvaluationResult> {
  const { family, config } = model;
  if (!(task in config.tasks)) throw new Error(`${model.path}: no head for task "${task}" (heads: ${Object.keys(config.tasks).join(', ')})`);
  const { tensors, lookup } = toTensors(model);
  let correct = 0;
  let lossSum = 0;
  try {
    for (let start = 0; start < split.count; start += batchSize) {
      const end = Math.min(split.count, start + batchSize);
      const [hitsTensor, lossTensor] = tf.tidy(() => {
        const out = logits(family, config, lookup, family.inputs(config, split, range(start, end), `${task} data`), task);
        const labels = tf.tensor1d(split.labels.subarray(start, end), 'int32');
        const hits = tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), labels), 'int32'));
        const ce = tf.sum(tf.neg(tf.sum(tf.mul(tf.oneHot(labels, config.tasks[task]), tf.logSoftmax(out)), 1)));
        return [hits, ce];
      });
      correct += (await hitsTensor.data())[0];
      lossSum += (await lossTensor.data())[0];
      tf.dispose([hitsTensor, lossTensor]);
    }
  } finally {
    tensors.forEach((t) => t.dispose());
  }
  return { accuracy: correct / split.count, loss: lossSum / split.count, count: split.count };
}
