/**
 * Runs task-vector recipes (kernels/recipe.ts) on a WebGPU device with the kernels of
 * task-vector-wgsl.ts. Inputs are written by the caller straight into mapped staging buffers (no
 * writeBuffer copy), copied to device buffers, merged, and read back through mapped buffers; every
 * tensor's work is one submission, so several tensors in flight overlap their upload, compute and
 * read-back.
 */
import { sumDivisor } from '../kernels/combine';
import { DropRule, rowDrop, rowKeepCount, TaskVectorRecipe } from '../kernels/recipe';
import { breadcrumbsCounts } from '../kernels/sparsify';
import { GpuBufferPool, BufferSet } from './buffers';
import { buildKernels, GpuAdapterInfo, openGpuDevice, workgroupGrid } from './dawn';
import { BINS_PER_SELECTION, NONE, RULE_KIND, TASK_VECTOR_WGSL } from './task-vector-wgsl';

const CHUNK_UNIFORM_BYTES = 48;
const MODEL_BYTES = 48;
const WORKGROUP = 256;

/** Why a recipe cannot run on the GPU, or undefined when it can. */
export function gpuRecipeProblem(recipe: TaskVectorRecipe, elements: number): string | undefined {
  if (elements >= 2 ** 32) return `${elements} elements: the GPU kernels index tensors with 32 bits`;
  for (const { drop } of recipe.models) {
    if (!(drop.kind in RULE_KIND)) return `drop rule "${drop.kind}" has no GPU kernel`;
  }
  return undefined;
}

/**
 * Writes one input's values for elements [start, start + values.length) into `values`, now or by
 * the promise it returns (never asked for the base of a recipe without one).
 */
export type FillInput = (input: 'base' | number, start: number, values: Float32Array) => void | Promise<void>;

/** Limits below the device's, so that tests reach chunking and two-dimensional grids at small sizes. */
export interface KernelLimits {
  /** Elements of all models in one chunk (default: what one storage binding holds). */
  maxChunkElements?: number;
  /** Workgroups along one grid dimension (default: the device's maxComputeWorkgroupsPerDimension). */
  maxWorkgroupsPerDimension?: number;
}

/** NaN/Inf values of one input: how many, and the first flat index (−1 when none). */
export interface NonFiniteCount {
  count: number;
  first: number;
}

export interface GpuMergeResult {
  merged: Float32Array;
  /** Of the base (zero for a recipe without one) and of each model, in recipe order. */
  nonFinite: { base: NonFiniteCount; models: NonFiniteCount[] };
}

interface ChunkPlan {
  start: number;
  length: number;
}

export class GpuTaskVectorKernels {
  private readonly layout: GPUBindGroupLayout;
  private readonly pipelines: Record<'taskVectors' | 'cutHigh' | 'lowHistogram' | 'cutLow' | 'blockCounts' | 'scanBlocks' | 'rowSelect' | 'drops' | 'combine', GPUComputePipeline>;
  /** Largest chunk of one input that fits a storage binding (a multiple of the workgroup size). */
  private readonly maxBindingElements: number;
  /** GPU time of the compute passes so far, when the device can write timestamps (benchmarks). */
  private kernelNanoseconds = 0;
  private readonly timestamps: boolean;
  /** Workgroups per grid dimension before the grid grows along y. */
  private readonly maxGroupsPerDimension: number;
  /** Staging, device and read-back buffers kept between tensors (see releaseBuffers). */
  private readonly pool: GpuBufferPool;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: GpuAdapterInfo,
    { maxChunkElements, maxWorkgroupsPerDimension }: KernelLimits,
  ) {
    const module = device.createShaderModule({ code: TASK_VECTOR_WGSL });
    const storage = (binding: number, type: GPUBufferBindingType): GPUBindGroupLayoutEntry => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
    this.layout = device.createBindGroupLayout({
      entries: [
        storage(0, 'uniform'),
        storage(1, 'read-only-storage'),
        storage(2, 'storage'),
        storage(3, 'storage'),
        storage(4, 'storage'),
        storage(5, 'storage'),
        storage(6, 'storage'),
        storage(7, 'read-only-storage'),
        storage(8, 'storage'),
      ],
    });
    const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.layout] });
    const pipeline = (entryPoint: string) => device.createComputePipeline({ layout: pipelineLayout, compute: { module, entryPoint } });
    this.pipelines = {
      taskVectors: pipeline('taskVectors'),
      cutHigh: pipeline('cutHigh'),
      lowHistogram: pipeline('lowHistogram'),
      cutLow: pipeline('cutLow'),
      blockCounts: pipeline('blockCounts'),
      scanBlocks: pipeline('scanBlocks'),
      rowSelect: pipeline('rowSelect'),
      drops: pipeline('drops'),
      combine: pipeline('combine'),
    };
    this.timestamps = device.features.has('timestamp-query');
    const bindingElements = Math.min(device.limits.maxStorageBufferBindingSize / 4, maxChunkElements ?? Infinity);
    this.maxBindingElements = Math.max(WORKGROUP, Math.floor(bindingElements / WORKGROUP) * WORKGROUP);
    this.maxGroupsPerDimension = Math.min(device.limits.maxComputeWorkgroupsPerDimension, maxWorkgroupsPerDimension ?? Infinity);
    this.pool = new GpuBufferPool();
  }

  /** Opens the first WebGPU adapter; throws GpuUnavailableError saying why when there is none. */
  static async open(limits: KernelLimits = {}): Promise<GpuTaskVectorKernels> {
    const { device, adapter } = await openGpuDevice({ timestamps: true });
    return buildKernels(device, () => new GpuTaskVectorKernels(device, adapter, limits));
  }

  destroy(): void {
    this.pool.clear();
    this.device.destroy();
  }

  /** How many large buffers were reused from earlier tensors instead of allocated. */
  buffersReused(): number {
    return this.pool.reused;
  }

  /** Frees the buffers kept between tensors (a merge calls it when it ends). */
  releaseBuffers(): void {
    this.pool.clear();
  }

  /** Seconds the GPU spent in merge kernels so far (undefined without timestamp queries). */
  kernelSeconds(): number | undefined {
    return this.timestamps ? this.kernelNanoseconds / 1e9 : undefined;
  }

  /**
   * Chunks of the tensor such that each chunk's inputs of all models fit one binding; chunks hold
   * whole 256-entry blocks, and whole rows when a row is selected as a unit (`wholeRows`).
   */
  private chunks(elements: number, models: number, rowLength: number, wholeRows: boolean): ChunkPlan[] {
    const unit = wholeRows ? lcm(WORKGROUP, rowLength) : WORKGROUP;
    if (unit * models > this.maxBindingElements && elements > unit) throw new Error(`rows of ${rowLength} elements do not fit the GPU's storage bindings`);
    const size = Math.max(unit, Math.floor(this.maxBindingElements / models / unit) * unit);
    const chunks: ChunkPlan[] = [];
    for (let start = 0; start < elements; start += size) chunks.push({ start, length: Math.min(size, elements - start) });
    if (chunks.length === 0) chunks.push({ start: 0, length: 0 });
    return chunks;
  }

  /**
   * Merges one tensor of `elements` values; `fill` writes the base's and each model's values into
   * staging memory. Resolves with the merged values written into `into`, and how many NaN/Inf
   * values each input held (the caller applies its policy; the kernels carry them through as the
   * CPU does).
   */
  async merge(recipe: TaskVectorRecipe, elements: number, rowLength: number, fill: FillInput, into: Float32Array): Promise<GpuMergeResult> {
    const problem = gpuRecipeProblem(recipe, elements);
    if (problem) throw new Error(problem);
    const { device } = this;
    const modelCount = recipe.models.length;
    const rows = elements / rowLength;
    if (rows !== Math.floor(rows)) throw new Error(`row length ${rowLength} does not divide ${elements} elements`);
    const blocks = Math.max(1, Math.ceil(elements / WORKGROUP));
    const usesSelection = recipe.models.some((m) => m.drop.kind === 'magnitude' || m.drop.kind === 'breadcrumbs');
    // Selection slots: one per model, and a second per model when Breadcrumbs needs its outliers.
    const slots = recipe.models.some((m) => m.drop.kind === 'breadcrumbs') ? 2 * modelCount : modelCount;
    const usesRowSelection = recipe.models.some((m) => m.drop.kind === 'rowTopK');
    const buffers = new BufferSet(device, this.pool);

    const { modelBytes, rowData } = this.describeModels(recipe, rows, elements);
    const modelBuffer = buffers.make(modelBytes.byteLength, GPUBufferUsage.STORAGE, true);
    new Uint8Array(modelBuffer.getMappedRange()).set(modelBytes);
    modelBuffer.unmap();
    const rowBuffer = buffers.make(rowData.byteLength, GPUBufferUsage.STORAGE, true);
    new Uint32Array(rowBuffer.getMappedRange(0, rowData.byteLength)).set(rowData);
    rowBuffer.unmap();
    const histogram = buffers.make(usesSelection ? slots * BINS_PER_SELECTION * 4 : 16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    const cuts = buffers.make(slots * 8 * 4, GPUBufferUsage.STORAGE);
    const blockPrefix = buffers.make(usesSelection ? slots * blocks * 4 : 16, GPUBufferUsage.STORAGE);
    // Per input (base, then each model): NaN/Inf count and NONE − first index.
    const nonFiniteBytes = (modelCount + 1) * 2 * 4;
    const nonFinite = buffers.make(nonFiniteBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    const nonFiniteReadback = buffers.make(nonFiniteBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);

    const encoder = device.createCommandEncoder();
    const bound: Array<{ chunk: ChunkPlan; group: GPUBindGroup; groups: [number, number]; rowGroups: [number, number]; merged: GPUBuffer; readback: GPUBuffer }> = [];
    const querySet = this.timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : undefined;
    try {
      for (const chunk of this.chunks(elements, modelCount, rowLength, usesRowSelection)) {
        const bytes = chunk.length * 4;
        // Staging: the base, then each model, written in place by the caller.
        const staging = buffers.make((modelCount + 1) * bytes, GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, true);
        const mapped = staging.getMappedRange();
        // A recipe without a base merges over zeros (kept staging buffers hold earlier values).
        const baseValues = new Float32Array(mapped, 0, chunk.length);
        const filling: Array<void | Promise<void>> = [];
        if (recipe.withoutBase) baseValues.fill(0);
        else filling.push(fill('base', chunk.start, baseValues));
        for (let t = 0; t < modelCount; t++) filling.push(fill(t, chunk.start, new Float32Array(mapped, (t + 1) * bytes, chunk.length)));
        // Every fill settles before the first failure is thrown: none may still be writing into
        // the mapping when it goes away.
        const failed = (await Promise.allSettled(filling)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        staging.unmap();
        const baseBuffer = buffers.make(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC);
        const deltaBuffer = buffers.make(modelCount * bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
        if (bytes > 0) {
          encoder.copyBufferToBuffer(staging, 0, baseBuffer, 0, bytes);
          encoder.copyBufferToBuffer(staging, bytes, deltaBuffer, 0, modelCount * bytes);
        }
        const groups = workgroupGrid(Math.ceil(chunk.length / WORKGROUP), this.maxGroupsPerDimension);
        const rowGroups = workgroupGrid(chunk.length / rowLength, this.maxGroupsPerDimension);
        const uniform = buffers.make(CHUNK_UNIFORM_BYTES, GPUBufferUsage.UNIFORM, true);
        this.writeChunkUniform(uniform.getMappedRange(), recipe, chunk, [groups[0], rowGroups[0]], blocks, rowLength, rows);
        uniform.unmap();
        const group = device.createBindGroup({
          layout: this.layout,
          entries: [uniform, modelBuffer, baseBuffer, deltaBuffer, histogram, cuts, blockPrefix, rowBuffer, nonFinite].map((b, binding) => ({ binding, resource: { buffer: b } })),
        });
        bound.push({ chunk, group, groups, rowGroups, merged: baseBuffer, readback: buffers.make(bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST) });
      }
      if (usesSelection) encoder.clearBuffer(histogram);
      encoder.clearBuffer(nonFinite);
      const pass = encoder.beginComputePass(querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
      const perChunk = (name: keyof typeof this.pipelines, perRow = false) => {
        pass.setPipeline(this.pipelines[name]);
        for (const { group, groups, rowGroups } of bound) {
          pass.setBindGroup(0, group);
          const [x, y] = perRow ? rowGroups : groups;
          pass.dispatchWorkgroups(x, y);
        }
      };
      const perSlot = (name: keyof typeof this.pipelines) => {
        pass.setPipeline(this.pipelines[name]);
        pass.setBindGroup(0, bound[0].group);
        pass.dispatchWorkgroups(slots);
      };
      perChunk('taskVectors');
      if (usesSelection) {
        perSlot('cutHigh');
        perChunk('lowHistogram');
        perSlot('cutLow');
        perChunk('blockCounts');
        perSlot('scanBlocks');
      }
      if (usesRowSelection) perChunk('rowSelect', true);
      perChunk('drops');
      perChunk('combine');
      pass.end();
      for (const { chunk, merged, readback } of bound) {
        if (chunk.length > 0) encoder.copyBufferToBuffer(merged, 0, readback, 0, chunk.length * 4);
      }
      encoder.copyBufferToBuffer(nonFinite, 0, nonFiniteReadback, 0, nonFiniteBytes);
      let timing: GPUBuffer | undefined;
      if (querySet) {
        const resolved = buffers.make(16, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC);
        timing = buffers.make(16, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
        encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
        encoder.copyBufferToBuffer(resolved, 0, timing, 0, 16);
      }
      device.pushErrorScope('validation');
      device.queue.submit([encoder.finish()]);
      const error = await device.popErrorScope();
      if (error) throw new Error(`WebGPU validation error: ${error.message}`);
      for (const { chunk, readback } of bound) {
        if (chunk.length === 0) continue;
        await readback.mapAsync(GPUMapMode.READ);
        into.set(new Float32Array(readback.getMappedRange(), 0, chunk.length), chunk.start);
        readback.unmap();
      }
      await nonFiniteReadback.mapAsync(GPUMapMode.READ);
      const counts = new Uint32Array(nonFiniteReadback.getMappedRange(0, nonFiniteBytes));
      const inputs = Array.from({ length: modelCount + 1 }, (_, i) => ({ count: counts[2 * i], first: counts[2 * i] > 0 ? NONE - counts[2 * i + 1] : -1 }));
      nonFiniteReadback.unmap();
      if (timing) {
        await timing.mapAsync(GPUMapMode.READ);
        const [begin, end] = new BigUint64Array(timing.getMappedRange());
        if (end > begin) this.kernelNanoseconds += Number(end - begin);
        timing.unmap();
      }
      return { merged: into, nonFinite: { base: inputs[0], models: inputs.slice(1) } };
    } finally {
      buffers.destroy();
      querySet?.destroy();
    }
  }

  /** The per-model parameter structs and the row data (thresholds, scales, weights) they point into. */
  private describeModels(recipe: TaskVectorRecipe, rows: number, elements: number): { modelBytes: Uint8Array; rowData: Uint32Array } {
    const words: number[] = [];
    const modelBytes = new Uint8Array(recipe.models.length * MODEL_BYTES);
    const view = new DataView(modelBytes.buffer);
    const appendFloats = (values: Float32Array) => {
      const offset = words.length;
      for (const v of new Uint32Array(Float32Array.from(values).buffer)) words.push(v);
      return offset;
    };
    recipe.models.forEach(({ weight, drop, rowWeights }, t) => {
      const at = t * MODEL_BYTES;
      const rule = normaliseRule(drop, elements);
      view.setUint32(at, RULE_KIND[rule.kind as keyof typeof RULE_KIND], true);
      view.setFloat32(at + 16, weight, true);
      view.setUint32(at + 28, NONE, true);
      view.setUint32(at + 32, rowWeights ? appendFloats(rowWeights) : NONE, true);
      switch (rule.kind) {
        case 'magnitude':
          view.setUint32(at + 8, rule.keepCount, true);
          view.setFloat32(at + 12, rule.scale, true);
          break;
        case 'breadcrumbs': {
          const { upper, outliers } = breadcrumbsCounts(elements, rule.density, rule.gamma);
          view.setUint32(at + 8, upper, true);
          view.setFloat32(at + 12, 1, true);
          view.setUint32(at + 36, outliers, true);
          break;
        }
        case 'bernoulli':
          view.setUint32(at + 4, rule.threshold, true);
          view.setFloat32(at + 12, rule.scale, true);
          view.setUint32(at + 20, rule.key.k0, true);
          view.setUint32(at + 24, rule.key.k1, true);
          break;
        case 'rowBernoulli': {
          view.setUint32(at + 20, rule.key.k0, true);
          view.setUint32(at + 24, rule.key.k1, true);
          view.setUint32(at + 28, words.length, true);
          const drops = Array.from(rule.rates, rowDrop);
          for (const d of drops) words.push(d.keepAll ? NONE : d.threshold);
          appendFloats(Float32Array.from(drops, (d) => d.scale));
          break;
        }
        case 'rowTopK': {
          view.setUint32(at + 28, words.length, true);
          const length = elements / rows;
          for (const rate of rule.rates) words.push(rowKeepCount(rate, length));
          break;
        }
        default:
          break;
      }
    });
    return { modelBytes, rowData: Uint32Array.from(words.length ? words : [0]) };
  }

  private writeChunkUniform(target: ArrayBuffer, recipe: TaskVectorRecipe, chunk: ChunkPlan, [groupsX, rowGroupsX]: [number, number], blocks: number, rowLength: number, rows: number): void {
    const view = new DataView(target);
    const u32 = [chunk.start, chunk.length, groupsX, recipe.models.length, blocks, rowLength, rows, recipe.consensus === undefined ? 0 : recipe.consensus === 'sum' ? 1 : 2, recipe.normalize ? 1 : 0];
    u32.forEach((v, i) => view.setUint32(i * 4, v, true));
    view.setFloat32(36, recipe.lambda, true);
    view.setFloat32(40, recipe.lambda / sumDivisor(recipe.models.map((m) => m.weight), recipe.normalize), true);
    view.setUint32(44, rowGroupsX, true);
  }
}

function lcm(a: number, b: number): number {
  let [x, y] = [a, b];
  while (y) [x, y] = [y, x % y];
  return (a / x) * b;
}

/** Clamps a magnitude rule's count to the tensor (a count of 0 keeps nothing); Breadcrumbs at density ≥ 1 keeps all. */
function normaliseRule(rule: DropRule, elements: number): DropRule {
  if (rule.kind === 'breadcrumbs' && rule.density >= 1) return { kind: 'keep' };
  if (rule.kind !== 'magnitude') return rule;
  if (rule.keepCount <= 0) return { kind: 'zero' };
  return { ...rule, keepCount: Math.min(rule.keepCount, elements) };
}
