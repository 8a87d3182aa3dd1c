/**
 * Exact intervention for the row partitions of a linear stage, act(x·Wᵀ + b), with tfjs ops.
 * Setting row i of W (and b[i]) back to the base changes only output unit i: each partition costs
 * one row of the layer's product, and where a linear map reads the stage's output (the next layer,
 * or a linear head) the change enters that map's pre-activation as a rank-one term, Δ ⊗ W'[:, i],
 * instead of a product over the whole layer; otherwise the changed unit is spliced into the
 * stage's clean output. A hidden unit (`level: unit`) is the same row with the reader's column i
 * set back too: the reader's pre-activation then changes by a_new ⊗ W'_b[:, i] − a ⊗ W'[:, i],
 * still rank one, so a unit costs what a row does.
 */
import * as tf from '@tensorflow/tfjs';
import { product, productTransposed } from '../families/products';
import { LinearMap, ParamLookup } from '../families/types';

/** x·Wᵀ + b for a linear map's tensors. */
function affine(x: tf.Tensor, map: LinearMap, params: ParamLookup): tf.Tensor2D {
  const pre = productTransposed(x, params(map.weight));
  return (map.bias ? tf.add(pre, params(map.bias)) : pre) as tf.Tensor2D;
}

/**
 * Rows `indices` of a tensor, as slices of its runs of consecutive rows (a stage's partitions
 * mostly are: only skipped rows break them) joined together; many short runs, a gather.
 * tfjs-wasm's gather costs far more per element than a slice's copy.
 */
function takeRows(tensor: tf.Tensor, indices: Int32Array): tf.Tensor {
  const runs: Array<[number, number]> = [];
  indices.forEach((row, i) => {
    if (i > 0 && row === indices[i - 1] + 1) runs[runs.length - 1][1]++;
    else runs.push([row, 1]);
  });
  if (runs.length > 16) return tf.gather(tensor, tf.tensor1d(indices, 'int32'));
  const rest = tensor.shape.slice(1);
  const slices = runs.map(([start, count]) => tf.slice(tensor, [start, ...rest.map(() => 0)], [count, ...rest.map(() => -1)]));
  return slices.length === 1 ? slices[0] : tf.concat(slices, 0);
}

export interface LinearRowStageInputs {
  linear: LinearMap;
  /** The linear map reading the stage's output (the next stage's, or the head's), if any. */
  reader: LinearMap | undefined;
  /** The stage's clean input [n, in] and output [n, units]. */
  input: tf.Tensor;
  output: tf.Tensor;
  finetune: ParamLookup;
  base: ParamLookup;
  /** The partition of each row of the stage's weight. */
  rowOf: Int32Array;
  /** The partitions own the reader's columns too (hidden units): their columns go back to the base. */
  readerColumnsToBase?: boolean;
}

export class LinearRowStage {
  private readonly inputT: tf.Tensor;
  private readonly outputT: tf.Tensor;
  /** The reader, its clean pre-activation [n, width] and its weight's columns [units, width]. */
  private readonly reader: { map: LinearMap; pre: tf.Tensor2D; columns: tf.Tensor; baseColumns: tf.Tensor | undefined } | undefined;

  constructor(private readonly stage: LinearRowStageInputs) {
    // Shared by every chunk: the input and clean output transposed (so chunks take contiguous
    // rows), and the reader's clean pre-activation and weight columns.
    this.inputT = tf.transpose(stage.input);
    this.outputT = tf.transpose(stage.output);
    const map = stage.reader;
    this.reader = map && {
      map,
      pre: tf.tidy(() => affine(stage.output, map, stage.finetune)),
      columns: tf.transpose(stage.finetune(map.weight)),
      baseColumns: stage.readerColumnsToBase ? tf.transpose(stage.base(map.weight)) : undefined,
    };
    if (stage.readerColumnsToBase && !map) throw new Error('a unit whose column is set back needs the linear map that reads it');
  }

  /** The reader's clean pre-activation [n, width], when there is a reader. */
  get readerPre(): tf.Tensor2D | undefined {
    return this.reader?.pre;
  }

  /**
   * The variants of a group of partitions, stacked variant by variant: the reader's output
   * ([P·n, width], `throughReader`) when there is a reader, else the stage's output ([P·n, units]).
   */
  variants(group: number[]): { activation: tf.Tensor; throughReader: boolean } {
    const { linear, base, rowOf } = this.stage;
    const n = this.stage.input.shape[0];
    // The P new rows act(W_b[i]·xᵀ + b_b[i]) and their change Δ [P, n] from the clean output.
    const indices = Int32Array.from(group, (k) => rowOf.indexOf(k));
    let pre = product(takeRows(base(linear.weight), indices), this.inputT);
    if (linear.bias) pre = tf.add(pre, tf.expandDims(takeRows(base(linear.bias), indices), 1));
    const changed = linear.activation(pre);
    const clean = takeRows(this.outputT, indices);
    const { reader } = this;
    if (reader) {
      // [P, n, width]: what the P variants add to the reader's clean pre-activation.
      const outer = (a: tf.Tensor, columns: tf.Tensor) => tf.mul(tf.expandDims(a, 2), tf.expandDims(takeRows(columns, indices), 1));
      const term = reader.baseColumns ? tf.sub(outer(changed, reader.baseColumns), outer(clean, reader.columns)) : outer(tf.sub(changed, clean), reader.columns);
      const variantPre = tf.add(tf.expandDims(reader.pre, 0), term);
      return { activation: reader.map.activation(tf.reshape(variantPre, [group.length * n, reader.pre.shape[1]])), throughReader: true };
    }
    const units = this.stage.output.shape[1]!;
    const where = tf.expandDims(tf.oneHot(tf.tensor1d(indices, 'int32'), units), 1);
    return { activation: tf.reshape(tf.add(tf.expandDims(this.stage.output, 0), tf.mul(tf.expandDims(tf.sub(changed, clean), 2), where)), [group.length * n, units]), throughReader: false };
  }

  dispose(): void {
    for (const t of [this.inputT, this.outputT, this.reader?.pre, this.reader?.columns, this.reader?.baseColumns]) t?.dispose();
  }
}
