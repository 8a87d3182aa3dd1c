/**
 * Runs the fused exact-intervention kernel (intervention-wgsl.ts) on a WebGPU device: the inputs of
 * one MLP layer's row partitions go up in one buffer, one dispatch scores them all, and the mean
 * loss and KL per partition come back.
 */
import { buildKernels, GpuAdapterInfo, openGpuDevice, sharedOnce, workgroupGrid } from './dawn';
import { BufferSet } from './buffers';
import { INTERVENTION_WGSL, MAX_CLASSES } from './intervention-wgsl';

const PARAM_WORDS = 24;

/** One layer's row partitions: values are row-major float32, as the engine's tensors. */
export interface RowInterventionInputs {
  /** The layer's input [examples, inDim]. */
  x: Float32Array;
  examples: number;
  inDim: number;
  /** The base's weight [units, inDim] and bias [units] of the layer (bias may be absent). */
  baseWeight: Float32Array;
  baseBias?: Float32Array;
  stageRelu: boolean;
  /** The fine-tune's clean output of the layer [examples, units]. */
  cleanOutput: Float32Array;
  units: number;
  /** The weight [width, units] of the map reading the layer (the head, or a hidden layer). */
  consumerWeight: Float32Array;
  width: number;
  /**
   * Set when the reader is a hidden layer: its clean pre-activation [examples, width], then the
   * linear head's weight [classes, width] (the head's bias cancels out of the logits' change).
   */
  hidden?: { relu: boolean; pre: Float32Array; headWeight: Float32Array };
  /** Clean probabilities [examples, classes] and the labels. */
  cleanProbabilities: Float32Array;
  classes: number;
  labels: ArrayLike<number>;
  /** The row (output unit) each partition sets back to the base. */
  rows: Int32Array;
}

export interface RowInterventionResult {
  /** Mean over the examples of the loss increase (corrupted − clean cross-entropy). */
  meanLossIncrease: Float32Array;
  meanKl: Float32Array;
}

/** The sizes that decide whether a layer's row partitions fit the kernel. */
export type RowInterventionShape = Pick<RowInterventionInputs, 'examples' | 'inDim' | 'units' | 'width' | 'classes'> & { hidden: boolean; partitions: number };

/**
 * Words of each input the kernel reads, in the order Params lists their offsets: the one layout
 * that both the size check and the upload follow.
 */
function inputWords({ examples, inDim, units, width, classes, hidden, partitions }: RowInterventionShape): number[] {
  return [
    examples * inDim, // x
    units * inDim, // base weight
    units, // base bias (zeros when absent)
    examples * units, // clean output
    hidden ? examples * width : 1, // hidden reader's clean pre-activation (a placeholder without one)
    width * units, // reader's weight
    hidden ? classes * width : 1, // head weight (a placeholder without a hidden reader)
    examples * classes, // clean probabilities
    examples, // labels
    partitions, // rows
  ];
}

export class GpuInterventionKernels {
  private readonly layout: GPUBindGroupLayout;
  private readonly pipeline: GPUComputePipeline;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: GpuAdapterInfo,
  ) {
    const module = device.createShaderModule({ code: INTERVENTION_WGSL });
    const entry = (binding: number, type: GPUBufferBindingType): GPUBindGroupLayoutEntry => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
    this.layout = device.createBindGroupLayout({ entries: [entry(0, 'uniform'), entry(1, 'read-only-storage'), entry(2, 'storage')] });
    this.pipeline = device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [this.layout] }), compute: { module, entryPoint: 'rowIntervention' } });
  }

  /** Opens the first WebGPU adapter; throws GpuUnavailableError saying why when there is none. */
  static async open(): Promise<GpuInterventionKernels> {
    const { device, adapter } = await openGpuDevice();
    return buildKernels(device, () => new GpuInterventionKernels(device, adapter));
  }

  destroy(): void {
    this.device.destroy();
  }

  /** Why a layer's row partitions cannot use the kernel here, or undefined when they can. */
  problem({ examples, inDim, units, width, classes, hidden, partitions }: RowInterventionShape): string | undefined {
    if (classes > MAX_CLASSES) return `${classes} classes: the fused kernel holds at most ${MAX_CLASSES} logits per example`;
    const words = inputWords({ examples, inDim, units, width, classes, hidden, partitions }).reduce((a, b) => a + b, 0);
    const limit = this.device.limits.maxStorageBufferBindingSize / 4;
    if (words > limit) return `the layer's inputs need ${words} words of GPU memory in one binding; the device allows ${limit}`;
    return undefined;
  }

  /** Mean loss increase and KL over the examples for each partition's corrupted model. */
  async rowIntervention(inputs: RowInterventionInputs): Promise<RowInterventionResult> {
    const shape = { ...inputs, hidden: inputs.hidden !== undefined, partitions: inputs.rows.length };
    const problem = this.problem(shape);
    if (problem) throw new Error(problem);
    const { device } = this;
    const partitions = inputs.rows.length;
    // Every input in one array, each at its offset (in 4-byte words), in the order Params lists them.
    const parts = [
      inputs.x,
      inputs.baseWeight,
      inputs.baseBias ?? new Float32Array(inputs.units),
      inputs.cleanOutput,
      inputs.hidden?.pre ?? new Float32Array(1),
      inputs.consumerWeight,
      inputs.hidden?.headWeight ?? new Float32Array(1),
      inputs.cleanProbabilities,
      Uint32Array.from(inputs.labels),
      Uint32Array.from(inputs.rows),
    ];
    const expected = inputWords(shape);
    parts.forEach((values, i) => {
      if (values.length !== expected[i]) throw new Error(`fused intervention input ${i} holds ${values.length} values; the layer's shape needs ${expected[i]}`);
    });
    const buffers = new BufferSet(device);
    try {
      const { buffer: data, offsets } = buffers.packed(parts, GPUBufferUsage.STORAGE);
      const [groupsX, groupsY] = workgroupGrid(partitions, device.limits.maxComputeWorkgroupsPerDimension);
      const params = buffers.make(PARAM_WORDS * 4, GPUBufferUsage.UNIFORM, true);
      new Uint32Array(params.getMappedRange()).set([
        inputs.examples,
        inputs.inDim,
        inputs.units,
        inputs.width,
        inputs.classes,
        inputs.hidden ? 1 : 0,
        inputs.stageRelu ? 1 : 0,
        inputs.hidden?.relu ? 1 : 0,
        partitions,
        groupsX,
        ...offsets,
      ]);
      params.unmap();

      const resultBytes = partitions * 2 * 4;
      const result = buffers.make(resultBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      const readback = buffers.make(resultBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
      const group = device.createBindGroup({ layout: this.layout, entries: [params, data, result].map((b, binding) => ({ binding, resource: { buffer: b } })) });
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(groupsX, groupsY);
      pass.end();
      encoder.copyBufferToBuffer(result, 0, readback, 0, resultBytes);
      device.pushErrorScope('validation');
      device.queue.submit([encoder.finish()]);
      const error = await device.popErrorScope();
      if (error) throw new Error(`WebGPU validation error: ${error.message}`);
      await readback.mapAsync(GPUMapMode.READ);
      const values = new Float32Array(readback.getMappedRange(), 0, partitions * 2);
      const meanLossIncrease = new Float32Array(partitions);
      const meanKl = new Float32Array(partitions);
      for (let p = 0; p < partitions; p++) {
        meanLossIncrease[p] = values[2 * p];
        meanKl[p] = values[2 * p + 1];
      }
      readback.unmap();
      return { meanLossIncrease, meanKl };
    } finally {
      buffers.destroy();
    }
  }
}


/** The process's fused intervention kernels, opened on first use (pipelines compile once). */
export const sharedInterventionKernels = sharedOnce(() => GpuInterventionKernels.open());
