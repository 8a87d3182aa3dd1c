/**
 * Runs a merge's tensor jobs on the GPU (engine/gpu) where the method's recipe has GPU kernels,
 * and on the CPU thread pool otherwise (copies, DELLA), counting which ran where so the result can say so.
 *
 * Inputs are read from disk straight into the GPU's mapped staging memory (F16/BF16 decoded on the
 * way); several tensors are kept in flight so that reading, uploading, merging and reading back
 * overlap.
 */
import { decodeToFloat32, DTYPE_SIZES, encodeFromFloat32, FloatDtype, isFloatDtype } from '../checkpoint/dtype';
import { TensorReader } from '../checkpoint/checkpoint';
import { gpuRecipeProblem, GpuTaskVectorKernels } from '../gpu/task-vector-kernels';
import { TaskVectorRecipe } from '../kernels/recipe';
import { getMergeMethod } from '../methods/registry';
import { TensorPool } from './pool';
import { applyNonFinitePolicy, BufferPool, checkMergedOutput, NonFiniteWarning, TensorInput, TensorJob, TensorResult } from './tensor-job';

/** Where a merge's tensors ran. */
export interface DeviceReport {
  /** The GPU adapter, when one was used. */
  gpu?: string;
  gpuTensors: number;
  cpuTensors: number;
  /** Why tensors that could have been merged on the GPU ran on the CPU. */
  cpuReasons: string[];
  /** Most input bytes of GPU tensors in flight at once. */
  peakInFlightBytes?: number;
  /** Most GPU tensors in flight at once. */
  peakInFlightTensors?: number;
}

/** The row length a recipe's per-row rules and weights refer to (1 when it has none). */
function rowLengthOf(recipe: TaskVectorRecipe, elements: number): number {
  for (const m of recipe.models) {
    const rows = m.drop.kind === 'rowBernoulli' || m.drop.kind === 'rowTopK' ? m.drop.rates.length : m.rowWeights?.length;
    if (rows) return elements / rows;
  }
  return 1;
}

/** Input bytes of GPU tensors in flight at once: staging and device copies stay within a few GiB. */
const DEFAULT_IN_FLIGHT_BYTES = 2 ** 31;
/**
 * GPU tensors in flight at once. The card merges a tensor in far less time than the host takes to
 * read it in and write it out, so a few are enough to overlap upload, compute and read-back with
 * the host's work; more only allocate more host-visible memory (slow) before any can be reused.
 */
const DEFAULT_IN_FLIGHT_TENSORS = 3;

/** How much GPU work may be in flight at once. */
export interface InFlightLimits {
  /** Input bytes (base + models, as float32); a tensor larger than this runs alone. */
  bytes?: number;
  tensors?: number;
}

export class GpuTensorRunner {
  /** Tensors in flight: enough to overlap reading, upload, compute and read-back. */
  readonly window: number;
  private readonly reader = new TensorReader();
  private readonly report: DeviceReport;
  private readonly reasons = new Set<string>();
  private inFlightBytes = 0;
  private inFlightTensors = 0;
  private peakInFlightBytes = 0;
  private peakInFlightTensors = 0;
  private readonly maxInFlightBytes: number;
  private readonly maxInFlightTensors: number;
  private readonly waiting: Array<() => void> = [];
  /** Arrays the GPU's results are read back into, reused once written (no garbage per tensor). */
  private readonly hostBuffers: BufferPool;
  private readonly readBackArrays = new WeakSet<ArrayBufferLike>();

  constructor(
    private readonly kernels: GpuTaskVectorKernels,
    private readonly fallback: TensorPool,
    limits: InFlightLimits = {},
  ) {
    this.maxInFlightBytes = limits.bytes ?? DEFAULT_IN_FLIGHT_BYTES;
    this.maxInFlightTensors = limits.tensors ?? DEFAULT_IN_FLIGHT_TENSORS;
    this.window = Math.max(4, fallback.threads * 2);
    this.hostBuffers = new BufferPool(this.window);
    this.report = { gpu: kernels.adapter.description, gpuTensors: 0, cpuTensors: 0, cpuReasons: [] };
  }

  get threads(): number {
    return this.fallback.threads;
  }

  deviceReport(): DeviceReport {
    return { ...this.report, cpuReasons: [...this.reasons], peakInFlightBytes: this.peakInFlightBytes, peakInFlightTensors: this.peakInFlightTensors };
  }

  run(job: TensorJob): Promise<TensorResult> {
    const elements = job.shape.reduce((a, b) => a * b, 1);
    const recipe = this.gpuRecipe(job, elements);
    if (!recipe) {
      this.report.cpuTensors++;
      return this.fallback.run(job);
    }
    this.report.gpuTensors++;
    return this.runOnGpu(job, recipe, elements);
  }

  /** Takes back a written result: the GPU's read-back arrays are reused here, the rest go to the threads. */
  recycle(bytes: Uint8Array): void {
    if (this.readBackArrays.has(bytes.buffer)) this.hostBuffers.give(bytes.buffer as ArrayBuffer);
    else this.fallback.recycle(bytes);
  }

  async close(): Promise<void> {
    this.kernels.releaseBuffers();
    this.reader.close();
    await this.fallback.close();
  }

  /** The job's recipe when the GPU can run it; otherwise notes why not and returns undefined. */
  private gpuRecipe(job: TensorJob, elements: number): TaskVectorRecipe | undefined {
    if (job.kind === 'copy') return undefined;
    if (job.embedding) {
      this.reasons.add('tokenizer_source: embeddings are laid out for the new vocabulary on the CPU');
      return undefined;
    }
    if (job.models.some((input) => input.lora)) {
      this.reasons.add('LoRA adapters: their updates are applied on the CPU');
      return undefined;
    }
    const method = getMergeMethod(job.method);
    const recipe = method.recipe?.({ ...job, elements });
    if (!recipe || (!recipe.withoutBase && !job.base)) {
      this.reasons.add(`${job.method}: no GPU kernel`);
      return undefined;
    }
    const problem = gpuRecipeProblem(recipe, elements);
    if (problem) {
      this.reasons.add(`${job.method}: ${problem}`);
      return undefined;
    }
    return recipe;
  }

  /**
   * Waits until one more tensor of `bytes` fits the in-flight limits (a tensor larger than the
   * byte budget runs alone), so that the window of tensors never holds more staging memory than
   * the budget.
   */
  private async reserve(bytes: number): Promise<void> {
    const fits = () => this.inFlightTensors === 0 || (this.inFlightTensors < this.maxInFlightTensors && this.inFlightBytes + bytes <= this.maxInFlightBytes);
    while (!fits()) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.inFlightTensors++;
    this.inFlightBytes += bytes;
    this.peakInFlightBytes = Math.max(this.peakInFlightBytes, this.inFlightBytes);
    this.peakInFlightTensors = Math.max(this.peakInFlightTensors, this.inFlightTensors);
  }

  private release(bytes: number): void {
    this.inFlightTensors--;
    this.inFlightBytes -= bytes;
    for (const wake of this.waiting.splice(0)) wake();
  }

  private async runOnGpu(job: TensorJob, recipe: TaskVectorRecipe, elements: number): Promise<TensorResult> {
    const bytes = (job.models.length + 1) * elements * 4;
    await this.reserve(bytes);
    try {
      return await this.mergeOnGpu(job, recipe, elements);
    } finally {
      this.release(bytes);
    }
  }

  private async mergeOnGpu(job: TensorJob, recipe: TaskVectorRecipe, elements: number): Promise<TensorResult> {
    if (!isFloatDtype(job.outDtype)) throw new Error(`tensor "${job.name}": cannot write a merged tensor as ${job.outDtype}`);
    const fill = (which: 'base' | number, start: number, values: Float32Array) => this.readRange(which === 'base' ? job.base! : job.models[which], start, values);
    const into = new Float32Array(this.hostBuffers.take(elements * 4).buffer);
    this.readBackArrays.add(into.buffer);
    const { merged, nonFinite } = await this.kernels.merge(recipe, elements, rowLengthOf(recipe, elements), fill, into);
    // The kernels count NaN/Inf per input (the CPU path checks each input as it loads it).
    const warnings: NonFiniteWarning[] = [];
    if (!recipe.withoutBase) applyNonFinitePolicy(job.base!, nonFinite.base.count, nonFinite.base.first, job.nonFinite, warnings);
    job.models.forEach((model, t) => applyNonFinitePolicy(model, nonFinite.models[t].count, nonFinite.models[t].first, job.nonFinite, warnings));
    if (warnings.length === 0) checkMergedOutput(job.name, merged, job.nonFinite, warnings, job.outDtype);
    const bytes = encodeFromFloat32(merged, job.outDtype as FloatDtype);
    if (bytes.buffer !== merged.buffer) this.hostBuffers.give(merged.buffer as ArrayBuffer); // F16/BF16: encoded into a copy
    return { bytes, warnings };
  }

  /**
   * Reads elements [start, start + values.length) of an input as float32 into `values` (mapped
   * staging memory), on the thread pool, so the main thread writes other tensors meanwhile.
   */
  private async readRange(input: TensorInput, start: number, values: Float32Array): Promise<void> {
    const size = DTYPE_SIZES[input.dtype];
    const range = { ...input, offset: input.offset + start * size, byteLength: values.length * size };
    if (input.dtype === 'F32') {
      await this.reader.readAsync(range, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      return;
    }
    decodeToFloat32(await this.reader.readAsync(range), input.dtype as FloatDtype, values);
  }
}
