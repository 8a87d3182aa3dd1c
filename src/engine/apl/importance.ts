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
import { labelsProblem, LinearMap, logits, ParamLookup, range, requireHead, ScoredTargets, scoredLogits, scoredTargets, StageContext, tileContext } from '../families/types';
import { GpuGradientKernels, sharedGradientKernels } from '../gpu/gradient-kernels';
import { GpuInterventionKernels, sharedInterventionKernels } from '../gpu/intervention-kernels';
import { fusedRowStage, mlpGradientInputs, scoringKernels } from './gpu-scoring';
import { LinearRowStage } from './row-stage';
import { ProgressCallback, ProgressTracker } from '../progress';
import { addPartitionSums, PartitionScheme, partitionReaches, spanOf } from './partitions';
import { diagonalFisher } from '../data-aware/fisher-information';

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
  /** Partitions scored as one changed unit of a linear stage (rows, and hidden units with their column): a row of work each, not a pass through their stages. */
  shortcutPartitions: number;
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
      if (k >= 0 && (!tableRows || tableRows.has(r))) read[k] = 1;
    });
  }
  // Columns are read by whatever reads the weight's input: never a table.
  for (const columns of scheme.columns.values()) columns.forEach((k) => (read[k] = 1));
  return read.map((r) => 1 - r);
}

/** 1 for each partition whose every entry is the same in the fine-tune and the base (bit for bit). */
function unchangedPartitions(scheme: PartitionScheme, finetune: Model, base: Model): Uint8Array {
  const changed = new Float64Array(scheme.count);
  const bitsOf = (model: Model, name: string) => {
    const values = model.params.get(name)!;
    return new Uint32Array(values.buffer, values.byteOffset, values.length);
  };
  for (const name of scheme.rows.keys()) {
    const theta = bitsOf(finetune, name);
    const theta0 = bitsOf(base, name);
    addPartitionSums(scheme, name, (j) => (theta[j] !== theta0[j] ? 1 : 0), changed);
  }
  return Uint8Array.from(changed, (c) => (c > 0 ? 0 : 1));
}

function checkInputs({ base, finetune, task, probe }: ImportanceInputs): void {
  const classes = requireHead(finetune.config, task, finetune.path);
  if (probe.count === 0) throw new Error(`probe data for "${task}": the probe split has no examples, so no loss can be measured`);
  const problem = labelsProblem(probe, classes, `probe data for "${task}"`);
  if (problem) throw new Error(problem);
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

/** log Σ_c exp(logits[at + c]) over one example's `classes` logits, shifted by their maximum for stability. */
function logSumExp(logits: ArrayLike<number>, at: number, classes: number): number {
  let top = -Infinity;
  for (let c = 0; c < classes; c++) top = Math.max(top, logits[at + c]);
  let total = 0;
  for (let c = 0; c < classes; c++) total += Math.exp(logits[at + c] - top);
  return top + Math.log(total);
}

/** The clean predictive distribution per probe example: probabilities [n, C] and Σ_c p·log p [n]. */
interface CleanDistribution {
  probs: Float64Array;
  negEntropy: Float64Array;
}

/**
 * Mean cross-entropy and mean KL(clean ‖ corrupted) per variant, from the logits of `variants`
 * variants of the n probe examples stacked variant by variant ([variants·n, C], row-major), on the
 * host in float64: a few passes over a small array, where tfjs-wasm's logSoftmax, exp and
 * reductions cost as much as the forward pass they follow. With q = softmax(logits),
 * KL = Σ p·log p − Σ p·logits + logsumexp(logits), so only the log-sum-exp needs exponentials.
 */
function lossAndKl(logits: ArrayLike<number>, variants: number, labels: ArrayLike<number>, classes: number, clean: CleanDistribution): { loss: Float64Array; kl: Float64Array } {
  const n = labels.length;
  const loss = new Float64Array(variants);
  const kl = new Float64Array(variants);
  for (let p = 0; p < variants; p++) {
    let lossSum = 0;
    let klSum = 0;
    for (let i = 0; i < n; i++) {
      const at = (p * n + i) * classes;
      const logTotal = logSumExp(logits, at, classes);
      lossSum += logTotal - logits[at + labels[i]];
      let expected = 0;
      for (let c = 0; c < classes; c++) expected += clean.probs[i * classes + c] * logits[at + c];
      klSum += clean.negEntropy[i] - expected + logTotal;
    }
    loss[p] = lossSum / n;
    kl[p] = klSum / n;
  }
  return { loss, kl };
}

/**
 * The clean distribution of logits [n, C] (row-major), in float64, and the mean cross-entropy with
 * the labels (the clean loss).
 */
function cleanDistribution(logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number): CleanDistribution & { loss: number } {
  const probs = new Float64Array(logits.length);
  const negEntropy = new Float64Array(labels.length);
  let lossSum = 0;
  for (let i = 0, at = 0; i < labels.length; i++, at += classes) {
    const logTotal = logSumExp(logits, at, classes);
    for (let c = 0; c < classes; c++) {
      const logProb = logits[at + c] - logTotal;
      probs[at + c] = Math.exp(logProb);
      negEntropy[i] += probs[at + c] * logProb;
    }
    lossSum -= logits[at + labels[i]] - logTotal;
  }
  return { probs, negEntropy, loss: lossSum / labels.length };
}

export async function exactImportance(inputs: ImportanceInputs, options: ExactOptions = {}): Promise<ExactImportance> {
  checkInputs(inputs);
  const started = Date.now();
  const { base, finetune, task, probe, scheme } = inputs;
  const { family, config } = finetune;
  const classes = requireHead(config, task, finetune.path);
  const stages = family.stages(config);
  const n = probe.count;
  // The labels scored in the head's output (one per example, or a language model's completion tokens).
  const targets: ScoredTargets = scoredTargets(probe, range(0, n));
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
    keep.push(x);
    // The yardstick is the clean forward pass below, which is needed anyway. On a GPU backend the
    // first calls compile shaders, so one warm-up pass goes first; WASM has nothing to compile.
    if (tf.getBackend() === 'webgpu') await readAndDispose(tf.tidy(() => tf.sum(scoredLogits(logits(family, config, ft.lookup, x, task), targets))));
    const forwardStarted = process.hrtime.bigint();
    // Activations entering each stage, with the fine-tune's parameters.
    const context: StageContext = family.context?.(config, x) ?? {};
    keep.push(...Object.values(context));
    // (in a tidy scope: the stages' intermediate tensors are freed, only their outputs kept)
    const activations: tf.Tensor[] = [
      x,
      ...tf.tidy(() => {
        const outputs: tf.Tensor[] = [];
        for (const stage of stages) outputs.push(stage.apply(ft.lookup, outputs[outputs.length - 1] ?? x, context));
        return outputs;
      }),
    ];
    keep.push(...activations.slice(1));
    const cleanLogits = await readAndDispose(tf.tidy(() => scoredLogits(family.head(config, task, ft.lookup, activations[stages.length]), targets)));
    const clean = cleanDistribution(cleanLogits, targets.labels, classes);
    const cleanLoss = clean.loss;
    const forwardSeconds = Number(process.hrtime.bigint() - forwardStarted) / 1e9;
    forwardEquivalents += 1;

    /** Lookup where the trunk takes base values in the rows and columns whose partition is `partition`. */
    const variantLookup = (partition: number, made: tf.Tensor[]): ParamLookup => {
      const cache = new Map<string, tf.Tensor>();
      return (name) => {
        if (!scheme.shapes.has(name) || !partitionReaches(scheme, name, partition)) return ft.lookup(name);
        let variant = cache.get(name);
        if (!variant) {
          const shape = scheme.shapes.get(name)!;
          const rows = scheme.rows.get(name)!;
          const columns = scheme.columns.get(name);
          if (!columns && rows.every((p) => p === partition)) variant = bs.lookup(name);
          else {
            // The partition's rows, or-ed with its columns where it has some: masks that broadcast
            // over the weight, not one built entry by entry.
            const rowMask = tf.tensor(Uint8Array.from(rows, (p) => (p === partition ? 1 : 0)), [rows.length, ...shape.slice(1).map(() => 1)], 'bool');
            const columnMask = columns && tf.tensor(Uint8Array.from(columns, (p) => (p === partition ? 1 : 0)), [1, columns.length], 'bool');
            const mask = columnMask ? tf.logicalOr(rowMask, columnMask) : rowMask;
            variant = tf.where(mask, bs.lookup(name), ft.lookup(name));
            made.push(rowMask, variant, ...(columnMask ? [columnMask, mask] : []));
          }
          cache.set(name, variant);
        }
        return variant;
      };
    };

    /**
     * The stages a partition's intervention changes, first to last; −1 where it must be a full
     * forward pass (the model partition, or a table read by two stages: tied embeddings and LM head).
     */
    const stageSpan = (partition: number): [number, number] | -1 => {
      const tensors = spanOf(scheme, partition).tensors;
      if (scheme.level === 'model') return -1;
      const holders = stages.flatMap((s, i) => (tensors.some((t) => s.tensors.includes(t)) ? [i] : []));
      if (holders.length === 0 || tensors.some((t) => stages.filter((s) => s.tensors.includes(t)).length !== 1)) return -1;
      return [holders[0], holders[holders.length - 1]];
    };
    // Partitions that cannot change the logits are scored zero without running them: rows nobody
    // reads, and rows the fine-tune did not change.
    const unread = unreadPartitions(scheme, family.rowsRead?.(config, probe, range(0, n)));
    const unchanged = unchangedPartitions(scheme, finetune, base);
    // Keyed "first:last" by the stages the partitions change ("-1": a full forward pass each).
    const byStage = new Map<string, number[]>();
    let unreadCount = 0;
    let unchangedCount = 0;
    for (let k = 0; k < scheme.count; k++) {
      if (unread[k] || unchanged[k]) {
        // lossIncrease and kl stay 0
        if (unread[k]) unreadCount++;
        else unchangedCount++;
        continue;
      }
      const span = stageSpan(k);
      const key = span === -1 ? '-1' : span.join(':');
      const list = byStage.get(key);
      if (list) list.push(k);
      else byStage.set(key, [k]);
    }
    let done = unreadCount + unchangedCount;
    if (done > 0) progress.report(done, `${task}: ${unreadCount} partitions the probe set never reads, ${unchangedCount} the fine-tune left unchanged`);
    let fusedPartitions = 0;
    let shortcutPartitions = 0;
    const fused = await scoringKernels(options.interventionKernels, sharedInterventionKernels);
    const record = async (partitions: number[], corruptedLogits: tf.Tensor) => {
      const scored = targets.rows ? tf.tidy(() => scoredLogits(corruptedLogits, targets, partitions.length)) : corruptedLogits;
      const values = (await scored.data()) as Float32Array;
      if (scored !== corruptedLogits) scored.dispose();
      const { loss, kl: divergence } = lossAndKl(values, partitions.length, targets.labels, classes, clean);
      recordValues(partitions, Array.from(loss, (v) => v - cleanLoss), divergence);
    };
    const recordValues = (partitions: number[], increases: ArrayLike<number>, klValues: ArrayLike<number>) => {
      partitions.forEach((k, i) => {
        lossIncrease[k] = increases[i];
        kl[k] = Math.max(0, klValues[i]);
      });
      done += partitions.length;
      forwardEquivalents += partitions.length;
      progress.report(done, `${task}: ${done}/${scheme.count} partitions`);
    };

    for (const [key, partitions] of byStage) {
      if (key === '-1') {
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
      const [s, last] = key.split(':').map(Number);
      const perVariant = activations[last + 1].size;
      const chunk = Math.max(1, Math.min(Math.floor(maxRows / n), Math.floor((options.maxBatchElements ?? 2 ** 21) / perVariant)));
      const linear = stages[s].linear;
      const reader = s + 1 < stages.length ? stages[s + 1].linear : family.linearHead?.(config, task);
      // Row partitions of a linear stage, and hidden units of one (the row with the reader's
      // column): one changed unit each (row-stage.ts).
      const shortcut = linear ? rowStageShortcut(scheme, { linear, reader, stage: s, last, readerIsStage: s + 1 < stages.length }, partitions) : undefined;
      const rowOf = shortcut?.rowOf;
      const rowStage = linear && shortcut ? new LinearRowStage({ linear, reader, input: activations[s], output: activations[s + 1], finetune: ft.lookup, base: bs.lookup, ...shortcut }) : undefined;
      try {
        const gpuStage =
          fused && linear && reader && rowStage?.readerPre && !targets.rows && scheme.level === 'row'
            ? fusedRowStage(fused, { stages, stage: s, linear, reader: { map: reader, pre: rowStage.readerPre }, linearHead: family.linearHead?.(config, task), examples: n, classes, partitions: partitions.length, inDim: activations[s].shape[1]!, units: activations[s + 1].shape[1]! })
            : undefined;
        if (gpuStage && rowOf) {
          // The GPU's fused kernel, one dispatch per group of partitions: no tfjs ops per partition.
          await gpuStage.score({ base, finetune, stageInput: activations[s], stageOutput: activations[s + 1], cleanProbabilities: clean.probs, labels: probe.labels, partitions, rowOf, signal: options.signal, record: recordValues });
          fusedPartitions += partitions.length;
          continue;
        }
        for (let start = 0; start < partitions.length; start += chunk) {
          await yieldThenCheckAbort(options.signal);
          const group = partitions.slice(start, start + chunk);
          const made: tf.Tensor[] = [];
          const out = tf.tidy(() => {
            let activation: tf.Tensor;
            let next = last + 1;
            if (rowStage) {
              const variants = rowStage.variants(group);
              activation = variants.activation;
              if (variants.throughReader) {
                if (s + 1 === stages.length) return activation; // the reader was the head: these are logits
                next = s + 2;
              }
            } else {
              // Each variant through the stages its partition changes, then all of them as one batch.
              const variants = group.map((k) => {
                const lookup = variantLookup(k, made);
                let a = activations[s];
                for (let stage = s; stage <= last; stage++) a = stages[stage].apply(lookup, a, context);
                return a;
              });
              activation = tf.concat(variants, 0);
            }
            const tiled = tileContext(context, group.length);
            for (let later = next; later < stages.length; later++) activation = stages[later].apply(ft.lookup, activation, tiled);
            return family.head(config, task, ft.lookup, activation);
          });
          await record(group, out);
          out.dispose();
          made.forEach((t) => t.dispose());
          if (rowStage) shortcutPartitions += group.length;
        }
      } finally {
        rowStage?.dispose();
      }
    }
    return { lossIncrease, kl, cleanLoss, forwardEquivalents, forwardSeconds, fusedPartitions, shortcutPartitions, unreadPartitions: unreadCount, unchangedPartitions: unchangedCount, seconds: (Date.now() - started) / 1000 };
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
  const dot = new Float64Array(scheme.count);
  const addRows = (name: string, rowSums: ArrayLike<number>) => {
    const rows = scheme.rows.get(name)!;
    for (let r = 0; r < rows.length; r++) dot[rows[r]] += rowSums[r];
  };
  const kernels = await scoringKernels(options.gradientKernels, sharedGradientKernels);
  const mlp = kernels ? await mlpGradientInputs(base, finetune, task, probe, trunkNames, at) : undefined;
  // The kernels sum gradients by row: unit partitions (rows and columns) are summed below instead.
  const fused = kernels && mlp && scheme.columns.size === 0 && !kernels.problem(mlp.inputs) ? { kernels, mlp } : undefined;
  if (fused) {
    const { mlp } = fused;
    const { weightRows, biasRows } = await fused.kernels.rowDots(mlp.inputs);
    mlp.layers.forEach((layer, l) => {
      addRows(layer.weight, weightRows[l]);
      if (layer.bias) addRows(layer.bias, biasRows[l]);
    });
  } else {
    const gradients = await tfjsGradients(inputs, at, trunkNames);
    dot.set(partitionDots(scheme, trunkNames, gradients, (name) => {
      // A plain loop: Float64Array.from with a mapping function costs about 80 ns an entry in V8,
      // more than the backward pass itself on the MLP.
      const theta = finetune.params.get(name)!;
      const theta0 = base.params.get(name)!;
      const delta = new Float64Array(theta.length);
      for (let j = 0; j < theta.length; j++) delta[j] = theta[j] - theta0[j];
      return delta;
    }));
  }
  return { signed: dot.map((v) => -v), absolute: dot.map(Math.abs), at, fused: fused !== undefined, seconds: (Date.now() - started) / 1000 };
}

/** g·δ summed per partition (by row, and by column where units are read). */
function partitionDots(scheme: PartitionScheme, trunkNames: readonly string[], gradients: readonly Float32Array[], delta: (name: string) => ArrayLike<number>): Float64Array {
  const dot = new Float64Array(scheme.count);
  trunkNames.forEach((name, i) => {
    const g = gradients[i];
    const d = delta(name);
    addPartitionSums(scheme, name, (j) => g[j] * d[j], dot);
  });
  return dot;
}

/**
 * −g·δ per partition for several task vectors δ at once, g the loss gradient at `model` on the
 * probe set: one forward and backward pass whatever the number of δ (locating on the merged model
 * scores every fine-tune's contribution against each task's gradient).
 */
export async function gradientAlong(model: Model, task: string, probe: TaskSplit, scheme: PartitionScheme, deltas: ReadonlyArray<(name: string) => ArrayLike<number>>): Promise<Float64Array[]> {
  const inputs = { base: model, finetune: model, task, probe, scheme };
  checkInputs(inputs);
  const trunkNames = [...scheme.shapes.keys()];
  const gradients = await tfjsGradients(inputs, 'finetune', trunkNames);
  return deltas.map((delta) => partitionDots(scheme, trunkNames, gradients, delta).map((v) => -v));
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
      const targets = scoredTargets(probe, range(0, probe.count));
      const labels = tf.oneHot(tf.tensor1d(targets.labels, 'int32'), requireHead(config, task, finetune.path));
      const trunk = trunkNames.map(point);
      const lossOf = (...values: tf.Tensor[]) => {
        const lookup: ParamLookup = (name) => {
          const i = trunkNames.indexOf(name);
          return i >= 0 ? values[i] : point(name);
        };
        return tf.losses.softmaxCrossEntropy(labels, scoredLogits(logits(family, config, lookup, x, task), targets)) as tf.Scalar;
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

export interface FisherImportance {
  /** ½ Σ F·δ² per partition. */
  score: Float64Array;
  backwardPasses: number;
  seconds: number;
}

/**
 * The second-order estimate of what setting a partition back to the base costs: at the fine-tune
 * (a minimum of its task loss, so the gradient term vanishes) the loss rises by about ½ δᵀFδ, with
 * F the Fisher information; with its diagonal (data-aware/fisher-information.ts, expected over the
 * head's classes), ½ Σ_j F_j δ_j² over the partition's parameters. One backward pass per example
 * and class, where the gradient estimate needs one for the whole probe set.
 */
export async function fisherImportance(inputs: ImportanceInputs, signal?: AbortSignal): Promise<FisherImportance> {
  checkInputs(inputs);
  const { base, finetune, task, probe, scheme } = inputs;
  const fisher = await diagonalFisher({ model: finetune, task, probe, probePath: `probe data for "${task}"` }, 'expected', { signal });
  const score = new Float64Array(scheme.count);
  for (const name of scheme.rows.keys()) {
    const diagonal = fisher.byTensor.get(name)!;
    const theta = finetune.params.get(name)!;
    const theta0 = base.params.get(name)!;
    addPartitionSums(scheme, name, (j) => 0.5 * diagonal[j] * (theta[j] - theta0[j]) ** 2, score);
  }
  return { score, backwardPasses: fisher.backwardPasses, seconds: fisher.seconds };
}

/**
 * Whether a group of partitions that change stages `stage`…`last` can take the row shortcut: each
 * is one row (and bias entry) of the stage's linear map and, for a hidden unit, also the column of
 * the same index in the next stage's map, which reads it; nothing else of theirs is in either map.
 */
function rowStageShortcut(
  scheme: PartitionScheme,
  at: { linear: LinearMap; reader: LinearMap | undefined; stage: number; last: number; readerIsStage: boolean },
  partitions: number[],
): { rowOf: Int32Array; readerColumnsToBase: boolean } | undefined {
  const rowOf = scheme.rows.get(at.linear.weight);
  const ownColumns = scheme.columns.get(at.linear.weight);
  if (!rowOf || (ownColumns && partitions.some((k) => ownColumns.includes(k)))) return undefined;
  if (partitions.some((k) => rowOf.indexOf(k) < 0 || rowOf.indexOf(k) !== rowOf.lastIndexOf(k))) return undefined;
  if (scheme.level === 'row') return at.last === at.stage ? { rowOf, readerColumnsToBase: false } : undefined;
  if (scheme.level !== 'unit') return undefined;
  // A unit of the last hidden layer: its row alone, as at row level.
  if (at.last === at.stage) return { rowOf, readerColumnsToBase: false };
  if (at.last !== at.stage + 1 || !at.readerIsStage || !at.reader) return undefined;
  const readerColumns = scheme.columns.get(at.reader.weight);
  const readerRows = scheme.rows.get(at.reader.weight);
  const ownColumn = (k: number) => readerColumns?.[rowOf.indexOf(k)] === k && readerColumns.indexOf(k) === readerColumns.lastIndexOf(k);
  if (!readerColumns || partitions.some((k) => !ownColumn(k) || readerRows?.includes(k))) return undefined;
  return { rowOf, readerColumnsToBase: true };
}
