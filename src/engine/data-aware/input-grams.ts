/**
 * RegMean's statistics (Jin et al., "Dataless Knowledge Fusion by Merging Weights of Language
 * Models", arXiv 2212.09849): for every linear map x·Wᵀ of a model's trunk, the Gram matrix XᵀX of
 * the inputs it sees on the model's own probe data, divided by the number of input rows (so models
 * with larger probe splits do not count more). Found for any family by observing its products
 * (families/products.ts observeLinearInputs): a weight is a trunk tensor of two axes that is the
 * right operand of x·Wᵀ. Every row of the input counts, padding positions of text included: they
 * are rows the layer computes on.
 */
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from '../errors';
import { toTensors } from '../families/model';
import { observeLinearInputs, product } from '../families/products';
import { logits, range } from '../families/types';
import type { ProbedModel } from './probe-inputs';

export interface InputGrams {
  /** Weight tensor name → its inputs' Gram matrix, [in, in] row-major. */
  byWeight: Map<string, Float32Array>;
  /** Input rows each weight saw (examples, times positions for text). */
  rows: Map<string, number>;
  examples: number;
  seconds: number;
}

/** Examples per forward pass. */
const BATCH = 64;

export async function linearInputGrams({ model, task, probe, probePath }: ProbedModel, signal?: AbortSignal): Promise<InputGrams> {
  const started = Date.now();
  const { family, config } = model;
  const { tensors, lookup } = toTensors(model);
  const weights = new Map<tf.Tensor, string>();
  for (const { name, shape } of family.trunkShapes(config)) if (shape.length === 2) weights.set(lookup(name), name);
  const sums = new Map<string, tf.Tensor>();
  const rows = new Map<string, number>();
  try {
    for (let start = 0; start < probe.count; start += BATCH) {
      throwIfAborted(signal);
      tf.tidy(() => {
        const x = family.inputs(config, probe, range(start, Math.min(probe.count, start + BATCH)), `${probePath} (probe split)`);
        observeLinearInputs(
          (input, weight) => {
            const name = weights.get(weight);
            if (!name) return;
            const width = input.shape[input.shape.length - 1];
            const flat = tf.reshape(input, [-1, width]);
            const gram = product(tf.transpose(flat), flat);
            const previous = sums.get(name);
            sums.set(name, tf.keep(previous ? tf.add(previous, gram) : gram));
            previous?.dispose();
            rows.set(name, (rows.get(name) ?? 0) + flat.shape[0]);
          },
          () => logits(family, config, lookup, x, task),
        );
      });
    }
    const byWeight = new Map<string, Float32Array>();
    for (const [name, sum] of sums) {
      const count = rows.get(name)!;
      byWeight.set(name, Float32Array.from(await sum.data(), (v) => v / count));
    }
    return { byWeight, rows, examples: probe.count, seconds: (Date.now() - started) / 1000 };
  } finally {
    sums.forEach((s) => s.dispose());
    tensors.forEach((t) => t.dispose());
  }
}
