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
import { GradientInputs } from '../gpu/gradient-kernels';

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

/**
 * Whether the fused intervention kernel can score the row partitions of stage s: its activation is
 * named, and its output reaches the logits through linear maps only — the head directly (`head`
 * undefined), or one more named linear stage and then a linear head (`head` set).
 */
export function fusedRowPlan(stages: Stage[], s: number, linearHead: LinearMap | undefined): { head?: LinearMap } | undefined {
  if (!named(stages[s].linear) || linearHead?.activationName !== 'identity') return undefined;
  if (s === stages.length - 1) return {};
  if (s === stages.length - 2 && named(stages[s + 1].linear)) return { head: linearHead };
  return undefined;
}

function difference(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
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
