/**
 * Where APL scoring hands work to the GPU's own kernels (engine/gpu) instead of tfjs ops: which
 * models and partitions they cover, and the host arrays they are given. Both kernels cover MLPs —
 * linear layers with named activations and a linear head — which is where tfjs-webgpu's per-op
 * dispatch costs most relative to the arithmetic.
 */
import * as tf from '@tensorflow/tfjs';
import { Model } from '../families/model';
import { LinearMap, range, Stage } from '../families/types';
import { TaskSplit } from '../data/task-data';
import { yieldThenCheckAbort } from '../errors';
import { GradientInputs } from '../gpu/gradient-kernels';
import { GpuInterventionKernels } from '../gpu/intervention-kernels';
import { subtractInPlace } from '../kernels/combine';

/**
 * The kernels to use: none when `option` is false, the given ones, or by default the process's
 * shared kernels when TensorFlow.js runs on WebGPU (the user asked for GPU scoring).
 */
export async function scoringKernels<K>(option: K | false | undefined, shared: () => Promise<K>): Promise<K | undefined> {
  if (option === false) return undefined;
  if (option) return option;
  return tf.getBackend() === 'webgpu' ? shared() : undefined;
}

const named = (map: LinearMap | undefined): map is LinearMap & { activationName: 'relu' | 'identity' } => map?.activationName !== undefined;

/** Partitions of one layer scored in one dispatch, at most (abort is checked between dispatches). */
const PARTITIONS_PER_DISPATCH = 8192;

interface RowStageDescription {
  stages: Stage[];
  stage: number;
  /** The stage's linear map, and the linear map reading its output with that map's clean pre-activation. */
  linear: LinearMap;
  reader: { map: LinearMap; pre: tf.Tensor };
  linearHead: LinearMap | undefined;
  examples: number;
  /** The stage's input width and output units. */
  inDim: number;
  units: number;
  classes: number;
  partitions: number;
}

interface RowStageScoring {
  base: Model;
  finetune: Model;
  /** The stage's clean input and output, the clean probabilities [n, C], the probe labels. */
  stageInput: tf.Tensor;
  stageOutput: tf.Tensor;
  cleanProbabilities: Float64Array;
  labels: ArrayLike<number>;
  /** The stage's partitions, and the partition of each row of its weight. */
  partitions: number[];
  rowOf: Int32Array;
  signal?: AbortSignal;
  record: (partitions: number[], meanLossIncrease: ArrayLike<number>, meanKl: ArrayLike<number>) => void;
}

/**
 * The fused intervention kernel for the row partitions of one stage, when it applies: the stage's
 * activation is named, its output reaches the logits through linear maps only (the head directly,
 * or one more named linear stage and then a linear head), and its inputs fit the device.
 */
export function fusedRowStage(kernels: GpuInterventionKernels, description: RowStageDescription): { score(scoring: RowStageScoring): Promise<void> } | undefined {
  const { stages, stage: s, linear, reader, linearHead, examples, inDim, units, classes } = description;
  if (!named(linear) || linearHead?.activationName !== 'identity') return undefined;
  let head: LinearMap | undefined;
  if (s === stages.length - 2 && named(stages[s + 1].linear)) head = linearHead;
  else if (s !== stages.length - 1) return undefined;
  const shape = {
    examples,
    inDim,
    units,
    width: reader.pre.shape[1]!,
    classes,
    hidden: head !== undefined,
    partitions: Math.min(description.partitions, PARTITIONS_PER_DISPATCH),
  };
  if (kernels.problem(shape)) return undefined;
  return {
    async score({ base, finetune, stageInput, stageOutput, cleanProbabilities, labels, partitions, rowOf, signal, record }: RowStageScoring): Promise<void> {
      const [x, cleanOutput] = await Promise.all([stageInput, stageOutput].map((t) => t.data() as Promise<Float32Array>));
      const hidden = head && { relu: reader.map.activationName === 'relu', pre: (await reader.pre.data()) as Float32Array, headWeight: finetune.params.get(head.weight)! };
      const probabilities = Float32Array.from(cleanProbabilities);
      for (let start = 0; start < partitions.length; start += PARTITIONS_PER_DISPATCH) {
        await yieldThenCheckAbort(signal);
        const group = partitions.slice(start, start + PARTITIONS_PER_DISPATCH);
        const { meanLossIncrease, meanKl } = await kernels.rowIntervention({
          ...shape,
          x,
          baseWeight: base.params.get(linear.weight)!,
          baseBias: linear.bias ? base.params.get(linear.bias) : undefined,
          stageRelu: linear.activationName === 'relu',
          cleanOutput,
          consumerWeight: finetune.params.get(reader.map.weight)!,
          hidden,
          cleanProbabilities: probabilities,
          labels,
          rows: Int32Array.from(group, (k) => rowOf.indexOf(k)),
        });
        record(group, meanLossIncrease, meanKl);
      }
    },
  };
}

/** a − b, in a new array. */
function difference(a: Float32Array, b: Float32Array): Float32Array {
  const out = a.slice();
  subtractInPlace(out, b);
  return out;
}

/**
 * The gradient kernels' inputs for a model whose trunk is a stack of named linear stages and whose
 * head is linear, with the layers' tensor names; undefined for any other model. The gradient is
 * taken at the fine-tune's trunk, or the base's (`at`), with the fine-tune's head.
 */
export async function mlpGradientInputs(
  base: Model,
  finetune: Model,
  task: string,
  probe: TaskSplit,
  trunkNames: readonly string[],
  at: 'finetune' | 'base',
): Promise<{ inputs: GradientInputs; layers: LinearMap[] } | undefined> {
  const { family, config } = finetune;
  const maps = family.stages(config).map((stage) => stage.linear);
  const head = family.linearHead?.(config, task);
  if (!maps.every(named) || head?.activationName !== 'identity') return undefined;
  const layers = maps as LinearMap[];
  const covered = new Set(layers.flatMap((m) => (m.bias ? [m.weight, m.bias] : [m.weight])));
  if (trunkNames.length !== covered.size || !trunkNames.every((name) => covered.has(name))) return undefined;
  const point = at === 'base' ? base : finetune;
  const optional = (model: Model, name: string | undefined) => (name ? model.params.get(name) : undefined);
  const xTensor = family.inputs(config, probe, range(0, probe.count), `${task} probe data`);
  const x = (await xTensor.data()) as Float32Array;
  xTensor.dispose();
  return {
    layers,
    inputs: {
      x,
      examples: probe.count,
      labels: probe.labels,
      classes: config.tasks[task],
      headWeight: finetune.params.get(head.weight)!,
      headBias: optional(finetune, head.bias),
      layers: layers.map((map) => {
        const [units, inDim] = finetune.shapes.get(map.weight)!;
        return {
          weight: point.params.get(map.weight)!,
          bias: optional(point, map.bias),
          weightDelta: difference(finetune.params.get(map.weight)!, base.params.get(map.weight)!),
          biasDelta: map.bias ? difference(finetune.params.get(map.bias)!, base.params.get(map.bias)!) : undefined,
          units,
          inDim,
          relu: map.activationName === 'relu',
        };
      }),
    },
  };
}
