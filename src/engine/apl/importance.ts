/**
 * APL importance of each partition of a fine-tune's task vector δ = θ_t − θ_b, on the task's
 * probe set:
 *  - exact (causal intervention): I_k = mean_x [L(θ_t − δ_k; x) − L(θ_t; x)], and the KL divergence
 *    between the clean and corrupted predictive distributions. Partitions in the same stage
 *    (layer, block) share the activations before it and run as one batch after it, so the cost
 *    per partition approaches one forward pass over the probe set. A row of a linear layer changes
 *    one output unit: only that column is recomputed, and where a linear map reads it (the next
 *    layer, or a linear head) the change enters that map's pre-activation as a rank-one term, so a
 *    row partition of an MLP costs far less than a forward pass.
 *  - gradient (first-order approximation): Î_k = −g·δ_k (signed) or |g·δ_k|, g = ∇L at θ_t (or at
 *    θ_b with the fine-tune's head): one forward and backward pass covers every partition.
 */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';
import { throwIfAborted, yieldThenCheckAbort } from '../errors';
import { Model, toTensors } from '../families/model';
import { product, productTransposed } from '../families/products';
import { LinearMap, logits, ParamLookup, range, StageContext, tileContext } from '../families/types';
import { GpuGradientKernels, sharedGradientKernels } from '../gpu/gradient-kernels';
import { GpuInterventionKernels, sharedInterventionKernels } from '../gpu/intervention-kernels';
import { fusedRowStage, mlpGradientInputs, scoringKernels } from './gpu-scoring';
import { ProgressCallback, ProgressTracker } from '../progress';
import { PartitionScheme } from './partitions';

export interface ImportanceInputs {
  base: Model;
  finetune: Model;
  task: string;
  probe: TaskSplit;
  scheme: PartitionScheme;
}

export interface ExactImportance {
  lossIncrease: Float64Array;
  kl: Float64Array;
  cleanLoss: number;
  /** Forward passes over the probe set's rows, counted in probe-set equivalents. */
  forwardEquivalents: number;
  /** Wall time of one clean forward pass over the probe set (the yardstick for cost per partition). */
  forwardSeconds: number;
  /** Partitions scored by the GPU's fused intervention kernel rather than tfjs ops. */
  fusedPartitions: number;
  /** Partitions of table rows the probe set never reads (unused tokens): zero without a forward pass. */
  unreadPartitions: number;
  /** Partitions the fine-tune left equal to the base (frozen layers): zero without a forward pass. */
  unchangedPartitions: number;
  seconds: number;
}

export interface ExactOptions {
  /** Most rows (partitions × probe examples) in one batched pass. */
  maxBatchRows?: number;
  /**
   * Most activation elements entering the batched suffix at once (partitions × the stage's
   * activation size): bounds memory for sequence models, whose activations per example are large.
   */
  maxBatchElements?: number;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /**
   * The GPU's fused kernel for row partitions of MLP layers (gpu/intervention-kernels.ts). Default:
   * used when TensorFlow.js runs on WebGPU; `false`: never; kernels given: always (where it applies).
   */
  interventionKernels?: GpuInterventionKernels | false;
}

/** 1 for each partition all of whose rows lie in tables (`rowsRead`) and are not read by the probe set. */
function unreadPartitions(scheme: PartitionScheme, rowsRead: Map<string, Set<number>> | undefined): Uint8Array {
  const read = new Uint8Array(scheme.count);
  for (const [name, rows] of scheme.rows) {
    const tableRows = rowsRead?.get(name);
    rows.forEach((k, r) => {
      if (!tableRows || tableRows.has(r)) read[k] = 1;
    });
  }
  return read.map((r) => 1 - r);
}

/** 1 for each partition whose every entry is the same in the fine-tune and the base (bit for bit). */
function unchangedPartitions(scheme: PartitionScheme, finetune: Model, base: Model): Uint8Array {
  const changed = new Uint8Array(scheme.count);
  const bitsOf = (model: Model, name: string) => {
    const values = model.params.get(name)!;
    return new Uint32Array(values.buffer, values.byteOffset, values.length);
  };
  for (const [name, rows] of scheme.rows) {
    const theta = bitsOf(finetune, name);
    const theta0 = bitsOf(base, name);
    const rowLength = theta.length / rows.length;
    rows.forEach((k, r) => {
      if (changed[k]) return;
      for (let j = r * rowLength; j < (r + 1) * rowLength; j++) {
        if (theta[j] !== theta0[j]) {
          changed[k] = 1;
          return;
        }
      }
    });
  }
  return changed.map((c) => 1 - c);
}

function checkInputs({ base, finetune, task, probe }: ImportanceInputs): void {
  if (!(task in finetune.config.tasks)) throw new Error(`${finetune.path}: has no head for task "${task}" (heads: ${Object.keys(finetune.config.tasks).join(', ')})`);
  const bad = probe.labels.findIndex((y) => y < 0 || y >= finetune.config.tasks[task]);
  if (bad >= 0) throw new Error(`probe data for "${task}": label ${probe.labels[bad]} at index ${bad} does not fit the head's ${finetune.config.tasks[task]} classes`);
  for (const { name, shape } of finetune.family.trunkShapes(finetune.config)) {
    const baseShape = base.shapes.get(name);
    if (!baseShape) throw new Error(`${base.path}: lacks trunk tensor "${name}" that ${finetune.path} has: the models are not homologous`);
    if (JSON.stringify(baseShape) !== JSON.stringify(shape)) {
      throw new Error(`trunk tensor "${name}" has shape ${JSON.stringify(shape)} in ${finetune.path} but ${JSON.stringify(baseShape)} in ${base.path}: the models are not homologous`);
    }
  }
}

/**
 * Reads a tensor to the host asynchronously and frees it. Asynchronous reads work on every
 * backend; WebGPU in Node has no synchronous read-back.
 */
async function readAndDispose(tensor: tf.Tensor): Promise<Float32Array> {
  try {
    return (await tensor.data()) as Float32Array;
  } finally {
    tensor.dispose();
  }
}

/**
 * Mean cross-entropy and mean KL(clean ‖ corrupted) per variant, for logits of `variants` variants
 * of the n probe examples stacked along the first axis. The clean distribution and the one-hot
 * labels [n, C] broadcast over the variants instead of being tiled.
 */
function lossAndKl(logitsOfVariants: tf.Tensor, variants: number, oneHotLabels: tf.Tensor2D, cleanLogProbs: tf.Tensor2D, cleanProbs: tf.Tensor2D): [tf.Tensor1D, tf.Tensor1D] {
  const [n, classes] = oneHotLabels.shape;
  const logProbs = tf.reshape(tf.logSoftmax(logitsOfVariants), [variants, n, classes]);
  const loss = tf.neg(tf.mean(tf.sum(tf.mul(oneHotLabels, logProbs), 2), 1)) as tf.Tensor1D;
  const kl = tf.mean(tf.sum(tf.mul(cleanProbs, tf.sub(cleanLogProbs, logProbs)), 2), 1) as tf.Tensor1D;
  return [loss, kl];
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

/** x·Wᵀ + b for a linear map's tensors. */
function affine(x: tf.Tensor, map: LinearMap, params: ParamLookup): tf.Tensor2D {
  const pre = productTransposed(x, params(map.weight));
  return (map.bias ? tf.add(pre, params(map.bias)) : pre) as tf.Tensor2D;
}

export async function exactImportance(inputs: ImportanceInputs, options: ExactOptions = {}): Promise<ExactImportance> {
  checkInputs(inputs);
  const started = Date.now();
  const { base, finetune, task, probe, scheme } = inputs;
  const { family, config } = finetune;
  const classes = config.tasks[task];
  const stages = family.stages(config);
  const n = probe.count;
  const maxRows = options.maxBatchRows ?? 16384;
  const trunkNames = [...scheme.shapes.keys()];
  const ft = toTensors(finetune);
  const bs = toTensors(base, trunkNames);
  const lossIncrease = new Float64Array(scheme.count);
  const kl = new Float64Array(scheme.count);
  const progress = new ProgressTracker('importance', scheme.count, options.onProgress);
  let forwardEquivalents = 0;
  const keep: tf.Tensor[] = [];
  try {
    const x = family.inputs(config, probe, range(0, n), `${task} probe data`);
    const labels = tf.oneHot(tf.tensor1d(probe.labels, 'int32'), classes) as tf.Tensor2D;
    keep.push(x, labels);
    // The yardstick is the clean forward pass below, which is needed anyway. On a GPU backend the
    // first calls compile shaders, so one warm-up pass goes first; WASM has nothing to compile.
    if (tf.getBackend() === 'webgpu') await readAndDispose(tf.tidy(() => tf.sum(logits(family, config, ft.lookup, x, task))));
    const forwardStarted = process.hrtime.bigint();
    // Activations entering each stage, with the fine-tune's parameters.
    const context: StageContext = family.context?.(config, x) ?? {};
    keep.push(...Object.values(context));
    const activations: tf.Tensor[] = [x];
    for (const stage of stages) {
      const next = stage.apply(ft.lookup, activations[activations.length - 1], context);
      activations.push(next);
      keep.push(next);
    }
    const cleanLogProbs = tf.logSoftmax(family.head(config, task, ft.lookup, activations[stages.length])) as tf.Tensor2D;
    const cleanProbs = tf.exp(cleanLogProbs) as tf.Tensor2D;
    keep.push(cleanLogProbs, cleanProbs);
    const cleanLoss = (await readAndDispose(tf.neg(tf.mean(tf.sum(tf.mul(labels, cleanLogProbs), 1)))))[0];
    const forwardSeconds = Number(process.hrtime.bigint() - forwardStarted) / 1e9;
    forwardEquivalents += 1;

    /** Lookup where `tensors` take base values in the rows whose partition is `partition`. */
    const variantLookup = (partition: number, made: tf.Tensor[]): ParamLookup => {
      const cache = new Map<string, tf.Tensor>();
      return (name) => {
        const rows = scheme.rows.get(name);
        if (!rows || !rows.includes(partition)) return ft.lookup(name);
        let variant = cache.get(name);
        if (!variant) {
          const shape = scheme.shapes.get(name)!;
          const all = rows.every((p) => p === partition);
          if (all) variant = bs.lookup(name);
          else {
            const mask = tf.tensor(Uint8Array.from(rows, (p) => (p === partition ? 1 : 0)), [rows.length, ...shape.slice(1).map(() => 1)], 'bool');
            variant = tf.where(mask, bs.lookup(name), ft.lookup(name));
            made.push(mask, variant);
          }
          cache.set(name, variant);
        }
        return variant;
      };
    };

    const stageOf = (partition: number): number => {
      const group = scheme.groupOf[partition];
      if (group < 0) return -1; // the model partition spans every stage
      const tensors = scheme.groups[group];
      const index = stages.findIndex((s) => tensors.every((t) => s.tensors.includes(t)));
      return index;
    };
    // Partitions that cannot change the logits are scored zero without running them: rows nobody
    // reads, and rows the fine-tune did not change.
    const unread = unreadPartitions(scheme, family.rowsRead?.(config, probe, range(0, n)));
    const unchanged = unchangedPartitions(scheme, finetune, base);
    const byStage = new Map<number, number[]>();
    let unreadCount = 0;
    let unchangedCount = 0;
    for (let k = 0; k < scheme.count; k++) {
      if (unread[k] || unchanged[k]) {
        // lossIncrease and kl stay 0
        if (unread[k]) unreadCount++;
        else unchangedCount++;
        continue;
      }
      const s = stageOf(k);
      byStage.set(s, [...(byStage.get(s) ?? []), k]);
    }
    let done = unreadCount + unchangedCount;
    if (done > 0) progress.report(done, `${task}: ${unreadCount} partitions the probe set never reads, ${unchangedCount} the fine-tune left unchanged`);
    let fusedPartitions = 0;
    const fused = await scoringKernels(options.interventionKernels, sharedInterventionKernels);
    const record = async (partitions: number[], corruptedLogits: tf.Tensor) => {
      const [lossTensor, klTensor] = tf.tidy(() => lossAndKl(corruptedLogits, partitions.length, labels, cleanLogProbs, cleanProbs));
      recordValues(partitions, await readAndDispose(lossTensor), await readAndDispose(klTensor));
    };
    const recordValues = (partitions: number[], lossValues: Float32Array, klValues: Float32Array) => {
      partitions.forEach((k, i) => {
        lossIncrease[k] = lossValues[i] - cleanLoss;
        kl[k] = Math.max(0, klValues[i]);
      });
      done += partitions.length;
      forwardEquivalents += partitions.length;
      progress.report(done, `${task}: ${done}/${scheme.count} partitions`);
    };

    for (const [s, partitions] of byStage) {
      if (s < 0) {
        // Spans several stages: one full forward pass per partition.
        for (const k of partitions) {
          await yieldThenCheckAbort(options.signal);
          const made: tf.Tensor[] = [];
          const out = tf.tidy(() => logits(family, config, variantLookup(k, made), x, task));
          await record([k], out);
          out.dispose();
          made.forEach((t) => t.dispose());
        }
        continue;
      }
      const perVariant = activations[s + 1].size;
      const chunk = Math.max(1, Math.min(Math.floor(maxRows / n), Math.floor((options.maxBatchElements ?? 2 ** 21) / perVariant)));
      const linear = stages[s].linear;
      const rowOf = linear && scheme.level === 'row' ? scheme.rows.get(linear.weight) : undefined;
      // Shared by every partition of the stage: the input and clean output transposed (so each
      // chunk gathers contiguous rows), and the linear map that reads this stage's output (the next
      // stage or the head), if any, with its clean pre-activation and its weight's columns.
      const consumer = s + 1 < stages.length ? stages[s + 1].linear : family.linearHead?.(config, task);
      const shared: tf.Tensor[] = [];
      const keepForStage = <T extends tf.Tensor>(tensor: T): T => {
        shared.push(tensor);
        return tensor;
      };
      const rowStage = rowOf
        ? {
            inputT: keepForStage(tf.transpose(activations[s])),
            outputT: keepForStage(tf.transpose(activations[s + 1])),
            consumer: consumer && {
              map: consumer,
              pre: keepForStage(tf.tidy(() => affine(activations[s + 1], consumer, ft.lookup))),
              columns: keepForStage(tf.transpose(ft.lookup(consumer.weight))),
            },
          }
        : undefined;
      const reader = rowStage?.consumer;
      const gpuStage =
        fused && linear && rowOf && reader
          ? fusedRowStage(fused, { stages, stage: s, linear, reader, linearHead: family.linearHead?.(config, task), examples: n, classes, partitions: partitions.length, inDim: activations[s].shape[1]!, units: activations[s + 1].shape[1]! })
          : undefined;
      if (gpuStage && rowOf) {
        // The GPU's fused kernel, one dispatch per group of partitions: no tfjs ops per partition.
        try {
          await gpuStage.score({ base, finetune, stageInput: activations[s], stageOutput: activations[s + 1], cleanLogProbs, labels: probe.labels, partitions, rowOf, signal: options.signal, record: recordValues });
          fusedPartitions += partitions.length;
        } finally {
          shared.forEach((t) => t.dispose());
        }
        continue;
      }
      try {
        for (let start = 0; start < partitions.length; start += chunk) {
          await yieldThenCheckAbort(options.signal);
          const group = partitions.slice(start, start + chunk);
          const made: tf.Tensor[] = [];
          const out = tf.tidy(() => {
            let activation: tf.Tensor;
            let next = s + 1;
            if (linear && rowOf && rowStage) {
              // Row partitions of a linear stage: only output unit i changes. Compute the P new
              // rows act(W_b[i]·xᵀ + b_b[i]) and their change Δ [P, n] from the clean output.
              const indices = Int32Array.from(group, (k) => rowOf.indexOf(k));
              const rowIndex = tf.tensor1d(indices, 'int32');
              let pre = product(takeRows(bs.lookup(linear.weight), indices), rowStage.inputT);
              if (linear.bias) pre = tf.add(pre, tf.expandDims(takeRows(bs.lookup(linear.bias), indices), 1));
              const change = tf.sub(linear.activation(pre), takeRows(rowStage.outputT, indices));
              if (rowStage.consumer) {
                // The change reaches the next linear map's pre-activation as a rank-one term per
                // partition, Δ ⊗ W'[:, i]: no product over the whole layer per partition.
                const { map, pre: consumerPre, columns } = rowStage.consumer;
                const variantPre = tf.add(tf.expandDims(consumerPre, 0), tf.mul(tf.expandDims(change, 2), tf.expandDims(takeRows(columns, indices), 1)));
                activation = map.activation(tf.reshape(variantPre, [group.length * n, consumerPre.shape[1]]));
                if (next === stages.length) return activation; // the consumer was the head: these are logits
                next += 1;
              } else {
                // Splice the changed unit into the stage's clean output.
                const units = activations[s + 1].shape[1]!;
                const where = tf.expandDims(tf.oneHot(rowIndex, units), 1);
                activation = tf.reshape(tf.add(tf.expandDims(activations[s + 1], 0), tf.mul(tf.expandDims(change, 2), where)), [group.length * n, units]);
              }
            } else {
              const variants = group.map((k) => stages[s].apply(variantLookup(k, made), activations[s], context));
              activation = tf.concat(variants, 0);
            }
            const tiled = tileContext(context, group.length);
            for (let later = next; later < stages.length; later++) activation = stages[later].apply(ft.lookup, activation, tiled);
            return family.head(config, task, ft.lookup, activation);
          });
          await record(group, out);
          out.dispose();
          made.forEach((t) => t.dispose());
        }
      } finally {
        shared.forEach((t) => t.dispose());
      }
    }
    return { lossIncrease, kl, cleanLoss, forwardEquivalents, forwardSeconds, fusedPartitions, unreadPartitions: unreadCount, unchangedPartitions: unchangedCount, seconds: (Date.now() - started) / 1000 };
  } finally {
    keep.forEach((t) => t.dispose());
    ft.tensors.forEach((t) => t.dispose());
    bs.tensors.forEach((t) => t.dispose());
  }
}

export interface GradientImportance {
  /** −g·δ_k: the first-order estimate of the loss increase. */
  signed: Float64Array;
  /** |g·δ_k|. */
  absolute: Float64Array;
  at: 'finetune' | 'base';
  /** Whether the GPU's gradient kernels computed it rather than tfjs's autodiff. */
  fused: boolean;
  seconds: number;
}

export interface GradientOptions {
  /**
   * The GPU's gradient kernels for MLPs (gpu/gradient-kernels.ts). Default: used when TensorFlow.js
   * runs on WebGPU; `false`: never; kernels given: always (where they apply).
   */
  gradientKernels?: GpuGradientKernels | false;
}

export async function gradientImportance(inputs: ImportanceInputs, at: 'finetune' | 'base' = 'finetune', signal?: AbortSignal, options: GradientOptions = {}): Promise<GradientImportance> {
  checkInputs(inputs);
  throwIfAborted(signal);
  const started = Date.now();
  const { base, finetune, task, probe, scheme } = inputs;
  const trunkNames = [...scheme.shapes.keys()];
  // g·δ summed per partition: each tensor's per-row sums added to their rows' partitions.
  const dot = new Float64Array(scheme.count);
  const addRows = (name: string, rowSums: ArrayLike<number>) => {
    const rows = scheme.rows.get(name)!;
    for (let r = 0; r < rows.length; r++) dot[rows[r]] += rowSums[r];
  };
  const kernels = await scoringKernels(options.gradientKernels, sharedGradientKernels);
  const mlp = kernels ? await mlpGradientInputs(base, finetune, task, probe, trunkNames, at) : undefined;
  const fused = kernels !== undefined && mlp !== undefined && kernels.problem(mlp.inputs) === undefined;
  if (kernels && mlp && fused) {
    const { weightRows, biasRows } = await kernels.rowDots(mlp.inputs);
    mlp.layers.forEach((layer, l) => {
      addRows(layer.weight, weightRows[l]);
      if (layer.bias) addRows(layer.bias, biasRows[l]);
    });
  } else {
    const gradients = await tfjsGradients(inputs, at, trunkNames);
    trunkNames.forEach((name, i) => {
      const g = gradients[i];
      const theta = finetune.params.get(name)!;
      const theta0 = base.params.get(name)!;
      const rows = scheme.rows.get(name)!.length;
      const rowLength = g.length / rows;
      const sums = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        for (let j = r * rowLength; j < (r + 1) * rowLength; j++) sum += g[j] * (theta[j] - theta0[j]);
        sums[r] = sum;
      }
      addRows(name, sums);
    });
  }
  return { signed: dot.map((v) => -v), absolute: dot.map(Math.abs), at, fused, seconds: (Date.now() - started) / 1000 };
}

/** The mean loss's gradient with respect to each trunk tensor, by tfjs's autodiff, on the host. */
async function tfjsGradients({ base, finetune, task, probe, scheme }: ImportanceInputs, at: 'finetune' | 'base', trunkNames: string[]): Promise<Float32Array[]> {
  const { family, config } = finetune;
  const ft = toTensors(finetune);
  // The base's tensors are only needed when the gradient is taken there.
  const bs = toTensors(base, at === 'base' ? trunkNames : []);
  try {
    const point = (name: string) => (at === 'base' && scheme.shapes.has(name) ? bs.lookup(name) : ft.lookup(name));
    const gradients = tf.tidy(() => {
      const x = family.inputs(config, probe, range(0, probe.count), `${task} probe data`);
      const labels = tf.oneHot(tf.tensor1d(probe.labels, 'int32'), config.tasks[task]);
      const trunk = trunkNames.map(point);
      const lossOf = (...values: tf.Tensor[]) => {
        const lookup: ParamLookup = (name) => {
          const i = trunkNames.indexOf(name);
          return i >= 0 ? values[i] : point(name);
        };
        return tf.losses.softmaxCrossEntropy(labels, logits(family, config, lookup, x, task)) as tf.Scalar;
      };
      return tf.grads(lossOf)(trunk);
    });
    try {
      return await Promise.all(gradients.map((g) => g.data() as Promise<Float32Array>));
    } finally {
      gradients.forEach((g) => g.dispose());
    }
  } finally {
    ft.tensors.forEach((t) => t.dispose());
    bs.tensors.forEach((t) => t.dispose());
  }
}
