/**
 * Runs the gradient approximation's kernels (gradient-wgsl.ts) for one task on a WebGPU device:
 * every input goes up in one buffer, one submission runs the forward pass, the loss gradient, the
 * backward pass and the row scores, and only the per-row sums of g·δ come back.
 */
import { buildKernels, GpuAdapterInfo, openGpuDevice, sharedOnce } from './dawn';
import { BufferSet } from './buffers';
import { GRADIENT_WGSL, GRADIENT_WORKGROUP } from './gradient-wgsl';

const NONE = 0xffffffff;
const PARAM_BYTES = 48;
const MAX_GROUPS_X = 65535;

/** One linear layer, activation(a·Wᵀ + b), with W stored [units, inDim]. */
export interface GradientLayer {
  /** Where the gradient is taken (the fine-tune's values, or the base's). */
  weight: Float32Array;
  bias?: Float32Array;
  /** The task vector δ = fine-tune − base of the layer. */
  weightDelta: Float32Array;
  biasDelta?: Float32Array;
  units: number;
  inDim: number;
  relu: boolean;
}

export interface GradientInputs {
  /** The first layer's input [examples, inDim of layer 0]. */
  x: Float32Array;
  examples: number;
  layers: GradientLayer[];
  /** The linear head [classes, units of the last layer] and its bias. */
  headWeight: Float32Array;
  headBias?: Float32Array;
  classes: number;
  labels: ArrayLike<number>;
}

/** Per layer: Σ over each weight row of g·δ, and g·δ of each bias entry (g: the mean loss's gradient). */
export interface GradientRowDots {
  weightRows: Float32Array[];
  biasRows: Float32Array[];
}

type Kernel = 'forward' | 'softmaxGrad' | 'backward' | 'rowScores';

interface Dispatch {
  kernel: Kernel;
  m: number;
  n: number;
  k: number;
  a: number;
  b: number;
  c: number;
  d: number;
  out: number;
  relu: boolean;
  scale: number;
  /** Workgroups: one per 64 invocations, or one per row (rowScores). */
  workgroups: number;
}

export class GpuGradientKernels {
  private readonly layout: GPUBindGroupLayout;
  private readonly pipelines: Record<Kernel, GPUComputePipeline>;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: GpuAdapterInfo,
  ) {
    const module = device.createShaderModule({ code: GRADIENT_WGSL });
    this.layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
      ],
    });
    const layout = device.createPipelineLayout({ bindGroupLayouts: [this.layout] });
    const pipeline = (entryPoint: Kernel) => device.createComputePipeline({ layout, compute: { module, entryPoint } });
    this.pipelines = { forward: pipeline('forward'), softmaxGrad: pipeline('softmaxGrad'), backward: pipeline('backward'), rowScores: pipeline('rowScores') };
  }

  /** Opens the first WebGPU adapter; throws GpuUnavailableError saying why when there is none. */
  static async open(): Promise<GpuGradientKernels> {
    const { device, adapter } = await openGpuDevice();
    return buildKernels(device, () => new GpuGradientKernels(device, adapter));
  }

  destroy(): void {
    this.device.destroy();
  }

  /** Why the inputs cannot run here (too large for one storage binding), or undefined. */
  problem(shape: { examples: number; layers: Array<{ units: number; inDim: number }>; classes: number }): string | undefined {
    const { examples, layers, classes } = shape;
    let words = examples * layers[0].inDim + examples + 2 * examples * classes;
    const last = layers[layers.length - 1].units;
    words += classes * (last + 1);
    for (const { units, inDim } of layers) words += 2 * units * (inDim + 1) + 2 * examples * units + 2 * units;
    const limit = this.device.limits.maxStorageBufferBindingSize / 4;
    if (words > limit) return `the gradient pass needs ${words} words of GPU memory in one binding; the device allows ${limit}`;
    return undefined;
  }

  async rowDots(inputs: GradientInputs): Promise<GradientRowDots> {
    const problem = this.problem(inputs);
    if (problem) throw new Error(problem);
    const { device } = this;
    const { examples, layers, classes } = inputs;

    // Lay every tensor out in one buffer; the row scores of all layers last, to read back at once.
    const parts: Array<Float32Array | Uint32Array> = [];
    let words = 0;
    const place = (values: Float32Array | Uint32Array): number => {
      const at = words;
      parts.push(values);
      words += values.length;
      return at;
    };
    const reserve = (length: number): number => place(new Float32Array(length));
    const optional = (values: Float32Array | undefined): number => (values ? place(values) : NONE);
    const x = place(inputs.x);
    const labels = place(Uint32Array.from(inputs.labels));
    const placed = layers.map((layer) => ({
      weight: place(layer.weight),
      bias: optional(layer.bias),
      weightDelta: place(layer.weightDelta),
      biasDelta: optional(layer.biasDelta),
      output: reserve(examples * layer.units),
      dpre: reserve(examples * layer.units),
    }));
    const headWeight = place(inputs.headWeight);
    const headBias = optional(inputs.headBias);
    const logits = reserve(examples * classes);
    const dlogits = reserve(examples * classes);
    const scoresStart = words;
    const scores = layers.map((layer) => reserve(2 * layer.units));
    const scoresLength = words - scoresStart;

    const plan: Dispatch[] = [];
    const blocks = (count: number) => Math.ceil(count / GRADIENT_WORKGROUP);
    const base = { c: NONE, d: NONE, relu: false, scale: 1 };
    layers.forEach((layer, l) => {
      const input = l === 0 ? x : placed[l - 1].output;
      plan.push({ ...base, kernel: 'forward', m: examples, n: layer.units, k: layer.inDim, a: input, b: placed[l].weight, c: placed[l].bias, out: placed[l].output, relu: layer.relu, workgroups: blocks(examples * layer.units) });
    });
    const lastLayer = layers.length - 1;
    const lastUnits = layers[lastLayer].units;
    plan.push({ ...base, kernel: 'forward', m: examples, n: classes, k: lastUnits, a: placed[lastLayer].output, b: headWeight, c: headBias, out: logits, workgroups: blocks(examples * classes) });
    plan.push({ ...base, kernel: 'softmaxGrad', m: examples, n: classes, k: 0, a: logits, b: NONE, c: labels, out: dlogits, scale: 1 / examples, workgroups: blocks(examples) });
    for (let l = lastLayer; l >= 0; l--) {
      const [next, nextWeight, nextWidth] = l === lastLayer ? [dlogits, headWeight, classes] : [placed[l + 1].dpre, placed[l + 1].weight, layers[l + 1].units];
      plan.push({ ...base, kernel: 'backward', m: examples, n: layers[l].units, k: nextWidth, a: next, b: nextWeight, d: placed[l].output, out: placed[l].dpre, relu: layers[l].relu, workgroups: blocks(examples * layers[l].units) });
    }
    layers.forEach((layer, l) => {
      const input = l === 0 ? x : placed[l - 1].output;
      plan.push({ ...base, kernel: 'rowScores', m: examples, n: layer.units, k: layer.inDim, a: input, b: placed[l].weightDelta, c: placed[l].biasDelta, d: placed[l].dpre, out: scores[l], workgroups: layer.units });
    });

    const buffers = new BufferSet(device);
    try {
      const { buffer: memory } = buffers.packed(parts, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      const readback = buffers.make(scoresLength * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      for (const step of plan) {
        const groupsX = Math.min(Math.max(1, step.workgroups), MAX_GROUPS_X);
        const params = buffers.make(PARAM_BYTES, GPUBufferUsage.UNIFORM, true);
        const view = new DataView(params.getMappedRange());
        [step.m, step.n, step.k, step.a, step.b, step.c, step.d, step.out, step.relu ? 1 : 0].forEach((v, i) => view.setUint32(i * 4, v, true));
        view.setFloat32(36, step.scale, true);
        view.setUint32(40, groupsX, true);
        params.unmap();
        pass.setPipeline(this.pipelines[step.kernel]);
        pass.setBindGroup(0, device.createBindGroup({ layout: this.layout, entries: [params, memory].map((b, binding) => ({ binding, resource: { buffer: b } })) }));
        pass.dispatchWorkgroups(groupsX, Math.ceil(Math.max(1, step.workgroups) / groupsX));
      }
      pass.end();
      encoder.copyBufferToBuffer(memory, scoresStart * 4, readback, 0, scoresLength * 4);
      device.pushErrorScope('validation');
      device.queue.submit([encoder.finish()]);
      const error = await device.popErrorScope();
      if (error) throw new Error(`WebGPU validation error: ${error.message}`);
      await readback.mapAsync(GPUMapMode.READ);
      const values = new Float32Array(readback.getMappedRange(), 0, scoresLength).slice();
      readback.unmap();
      const weightRows: Float32Array[] = [];
      const biasRows: Float32Array[] = [];
      layers.forEach((layer, l) => {
        const offset = scores[l] - scoresStart;
        weightRows.push(values.subarray(offset, offset + layer.units));
        biasRows.push(values.subarray(offset + layer.units, offset + 2 * layer.units));
      });
      return { weightRows, biasRows };
    } finally {
      buffers.destroy();
    }
  }
}

/** The process's gradient kernels, opened on first use (pipelines compile once). */
export const sharedGradientKernels = sharedOnce(() => GpuGradientKernels.open());
