/**
 * Runs the gradient approximation's kernels (gradient-wgsl.ts) for one task on a WebGPU device:
 * every input goes up in one buffer, one submission runs the forward pass, the loss gradient, the
 * backward pass and the row scores, and only the per-row sums of g·δ come back.
 */
import { buildKernels, GpuAdapterInfo, openGpuDevice, sharedOnce, workgroupGrid } from './dawn';
import { BufferSet } from './buffers';
import { GRADIENT_WGSL, GRADIENT_WORKGROUP, NONE } from './gradient-wgsl';

const PARAM_BYTES = 48;

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

/**
 * Where each tensor lives in the one storage buffer, in 4-byte words (NONE for an absent bias),
 * and the buffer's size; the row scores of all layers come last, to be read back at once.
 */
function layOut(inputs: GradientInputs) {
  const { examples, classes } = inputs;
  let words = 0;
  const take = (length: number): number => {
    const at = words;
    words += length;
    return at;
  };
  const x = take(inputs.x.length);
  const labels = take(examples);
  const layers = inputs.layers.map((layer) => ({
    weight: take(layer.weight.length),
    bias: layer.bias ? take(layer.units) : NONE,
    weightDelta: take(layer.weightDelta.length),
    biasDelta: layer.biasDelta ? take(layer.units) : NONE,
    output: take(examples * layer.units),
    dpre: take(examples * layer.units),
  }));
  const headWeight = take(inputs.headWeight.length);
  const headBias = inputs.headBias ? take(classes) : NONE;
  const logits = take(examples * classes);
  const dlogits = take(examples * classes);
  const scoresStart = words;
  const scores = inputs.layers.map((layer) => take(2 * layer.units));
  return { x, labels, layers, headWeight, headBias, logits, dlogits, scores, scoresStart, scoresLength: words - scoresStart, words };
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
  problem(inputs: GradientInputs): string | undefined {
    return this.sizeProblem(layOut(inputs).words);
  }

  private sizeProblem(words: number): string | undefined {
    const limit = this.device.limits.maxStorageBufferBindingSize / 4;
    if (words > limit) return `the gradient pass needs ${words} words of GPU memory in one binding; the device allows ${limit}`;
    return undefined;
  }

  async rowDots(inputs: GradientInputs): Promise<GradientRowDots> {
    const layout = layOut(inputs);
    const problem = this.sizeProblem(layout.words);
    if (problem) throw new Error(problem);
    const { device } = this;
    const { examples, layers, classes } = inputs;
    const { x, labels, headWeight, headBias, logits, dlogits, scores, scoresStart, scoresLength } = layout;
    const placed = layout.layers;
    // The inputs at their places; activations, gradients and scores start as zeros.
    const writes: Array<[number, Float32Array | Uint32Array | undefined]> = [
      [x, inputs.x],
      [labels, Uint32Array.from(inputs.labels)],
      ...layers.flatMap((layer, l): Array<[number, Float32Array | undefined]> => [
        [placed[l].weight, layer.weight],
        [placed[l].bias, layer.bias],
        [placed[l].weightDelta, layer.weightDelta],
        [placed[l].biasDelta, layer.biasDelta],
      ]),
      [headWeight, inputs.headWeight],
      [headBias, inputs.headBias],
    ];

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
      const memory = buffers.make(layout.words * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, true);
      const mapped = memory.getMappedRange();
      for (const [at, values] of writes) {
        if (values) new Uint32Array(mapped, at * 4, values.length).set(new Uint32Array(values.buffer, values.byteOffset, values.length));
      }
      memory.unmap();
      const readback = buffers.make(scoresLength * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      for (const step of plan) {
        const [groupsX, groupsY] = workgroupGrid(step.workgroups, device.limits.maxComputeWorkgroupsPerDimension);
        const params = buffers.make(PARAM_BYTES, GPUBufferUsage.UNIFORM, true);
        const view = new DataView(params.getMappedRange());
        [step.m, step.n, step.k, step.a, step.b, step.c, step.d, step.out, step.relu ? 1 : 0].forEach((v, i) => view.setUint32(i * 4, v, true));
        view.setFloat32(36, step.scale, true);
        view.setUint32(40, groupsX, true);
        params.unmap();
        pass.setPipeline(this.pipelines[step.kernel]);
        pass.setBindGroup(0, device.createBindGroup({ layout: this.layout, entries: [params, memory].map((b, binding) => ({ binding, resource: { buffer: b } })) }));
        pass.dispatchWorkgroups(groupsX, groupsY);
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
