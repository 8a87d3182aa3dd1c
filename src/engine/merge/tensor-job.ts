/**
 * One output tensor's work, as a plain serialisable description, and the function that does it.
 * The same function runs inline and inside worker threads, so both paths compute identical bytes.
 */
import { decodeToFloat32, Dtype, encodeFromFloat32, FloatDtype, isFloatDtype } from '../checkpoint/dtype';
import { WasmArena, wasmAddress, wasmKernels } from '../kernels/wasm';
import { TensorReader } from '../checkpoint/checkpoint';
import { addLowRank } from '../checkpoint/lora';
import { CheckpointError, MergeInputError } from '../errors';
import { getMergeMethod } from '../methods/registry';
import { ParameterValue } from '../methods/types';
import { slerp } from '../methods/slerp';
import { EmbeddingRows, fallbackInto, permuteRows } from '../vocabulary/merge-vocabulary';

export interface TensorInput {
  /** The checkpoint this input comes from, for messages. */
  label: string;
  file: string;
  name: string;
  offset: number;
  byteLength: number;
  dtype: Dtype;
  shape: number[];
  elements: number;
  /** A LoRA adapter's update, added to this (base) tensor as it is read: scale · B·A, or its transpose. */
  lora?: { a: TensorInput; b: TensorInput; rank: number; scale: number; transpose: boolean };
}

export type NonFinitePolicy = 'error' | 'warn';

export interface TensorJob {
  name: string;
  shape: number[];
  /** 'copy': take the base's bytes unchanged (non-float tensors). */
  kind: 'merge' | 'copy';
  base: TensorInput | undefined;
  models: TensorInput[];
  method: string;
  globalParameters: Record<string, ParameterValue>;
  modelParameters: Array<Record<string, ParameterValue>>;
  seed: number;
  outDtype: Dtype;
  nonFinite: NonFinitePolicy;
  /** Per input model: values per row, from a data-aware method's preparation (APL). */
  rowParameters?: Array<Record<string, Float32Array>>;
  /** An embedding under tokenizer_source: each input's rows are laid out in the output vocabulary's order first. */
  embedding?: EmbeddingRows;
}

export interface NonFiniteWarning {
  label: string;
  tensor: string;
  count: number;
}

/**
 * Reuses tensor-sized buffers across jobs, so that after the first few tensors a merge allocates
 * nothing and its memory stays flat however many tensors follow (rather than rising with garbage
 * until the collector catches up). Buffers written to disk come back here via `recycle`.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private held = 0;

  constructor(private readonly maxHeld = 8) {}

  take(byteLength: number): Uint8Array {
    const buffer = this.free.get(byteLength)?.pop();
    if (buffer) {
      this.held--;
      return new Uint8Array(buffer);
    }
    return new Uint8Array(byteLength);
  }

  give(buffer: ArrayBuffer): void {
    if (this.held >= this.maxHeld || buffer.byteLength === 0) return;
    const list = this.free.get(buffer.byteLength) ?? [];
    list.push(buffer);
    this.free.set(buffer.byteLength, list);
    this.held++;
  }
}

export interface TensorResult {
  bytes: Uint8Array;
  warnings: NonFiniteWarning[];
}

/** Counts NaN and ±Inf values; SIMD when the array is in kernel memory. */
function countNonFinite(values: Float32Array): { count: number; first: number } {
  if (wasmAddress(values) !== undefined) {
    const count = wasmKernels().countNonFinite(values.byteOffset, values.length);
    return { count, first: count > 0 ? values.findIndex((v) => !Number.isFinite(v)) : -1 };
  }
  let count = 0;
  let first = -1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v - v is NaN exactly for NaN and ±Infinity.
    if (v - v !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  return { count, first };
}

/** Reads a float tensor into `values` (F32 straight from disk; F16/BF16 decoded). */
function readFloatInto(reader: TensorReader, buffers: BufferPool, input: TensorInput, values: Float32Array): Float32Array {
  if (input.dtype === 'F32') {
    reader.read(input, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  } else {
    const raw = reader.read(input, buffers.take(input.byteLength));
    decodeToFloat32(raw, input.dtype as FloatDtype, values);
    buffers.give(raw.buffer as ArrayBuffer);
  }
  return values;
}

/** Reads one input into kernel memory as float32, with its LoRA update added when it has one. */
function loadFloat(reader: TensorReader, buffers: BufferPool, arena: WasmArena, input: TensorInput, policy: NonFinitePolicy, warnings: NonFiniteWarning[]): Float32Array {
  const values = arena.floats(input.elements);
  readFloatInto(reader, buffers, input, values);
  if (input.lora) {
    const { a, b, rank, scale, transpose } = input.lora;
    const [aValues, bValues] = [a, b].map((m) => readFloatInto(reader, buffers, m, new Float32Array(m.elements)));
    addLowRank(values, aValues, bValues, rank, scale, transpose, a.shape[1]);
  }
  const { count, first } = countNonFinite(values);
  applyNonFinitePolicy(input, count, first, policy, warnings);
  return values;
}

/** An error (naming the file, tensor and first flat index) or a collected warning for `count` NaN/Inf values of an input. */
export function applyNonFinitePolicy(input: TensorInput, count: number, first: number, policy: NonFinitePolicy, warnings: NonFiniteWarning[]): void {
  if (count === 0) return;
  if (policy === 'error') {
    throw new CheckpointError(input.file, `${count} non-finite value(s) (NaN or Inf), first at flat index ${first}`, input.name);
  }
  const earlier = warnings.find((w) => w.label === input.label && w.tensor === input.name);
  if (earlier) earlier.count += count;
  else warnings.push({ label: input.label, tensor: input.name, count });
}

/** The label an output's NaN/Inf warning carries (inputs carry their model's label). */
export const MERGED_OUTPUT_LABEL = 'merged output';

/**
 * NaN/Inf in a merged tensor whose inputs were finite: weights or parameters that overflow float32
 * (a weight of 1e308, a lambda of 1e30). An error naming the tensor, its count and first index,
 * or a warning under `policy` 'warn'.
 */
/** The smallest magnitude that rounds to infinity in each half type (half-way past its largest finite value). */
const HALF_OVERFLOW: Partial<Record<Dtype, number>> = { F16: 65520, BF16: 2 ** 127 * (2 - 2 ** -8) };

/** NaN/Inf in the merged values, and (written as a half type) values that would become infinite there. */
function nonFiniteInOutput(merged: Float32Array, outDtype: Dtype): { count: number; first: number; overflow: boolean } {
  const found = countNonFinite(merged);
  const limit = HALF_OVERFLOW[outDtype];
  if (found.count > 0 || limit === undefined) return { ...found, overflow: false };
  let count = 0;
  let first = -1;
  for (let i = 0; i < merged.length; i++) {
    if (Math.abs(merged[i]) < limit) continue;
    if (count++ === 0) first = i;
  }
  return { count, first, overflow: true };
}

export function checkMergedOutput(name: string, merged: Float32Array, policy: NonFinitePolicy, warnings: NonFiniteWarning[], outDtype: Dtype = 'F32'): void {
  const { count, first, overflow } = nonFiniteInOutput(merged, outDtype);
  if (count === 0) return;
  if (policy === 'error') {
    const half = outDtype === 'F16' ? 'float16' : 'bfloat16';
    const what = overflow ? `value(s) beyond ${half}'s range (they would be written as Inf)` : 'non-finite value(s) (NaN or Inf)';
    throw new MergeInputError(`tensor "${name}": the merged values have ${count} ${what}, first at flat index ${first}: the weights or parameters overflow ${overflow ? half : 'float32'} (with the non-finite policy 'warn' they are written, and reported)`);
  }
  warnings.push({ label: MERGED_OUTPUT_LABEL, tensor: name, count });
}

/** Per-thread state a job runs with: open files, reusable buffers, kernel memory. */
export interface JobContext {
  reader: TensorReader;
  buffers: BufferPool;
  arena: WasmArena;
}

export function createJobContext(): JobContext {
  return { reader: new TensorReader(), buffers: new BufferPool(), arena: new WasmArena() };
}

export function runTensorJob(job: TensorJob, context: JobContext): TensorResult {
  const { reader, buffers, arena } = context;
  const warnings: NonFiniteWarning[] = [];
  if (job.kind === 'copy') {
    const source = job.base ?? job.models[0];
    return { bytes: reader.read(source, buffers.take(source.byteLength)), warnings };
  }
  const method = getMergeMethod(job.method);
  const inputs = job.base ? [job.base, ...job.models] : job.models;
  const outElements = job.shape.reduce((a, b) => a * b, 1);
  const permuted = job.embedding ? inputs.length * (outElements * 4 + 16) : 0;
  arena.reset(inputs.reduce((total, input) => total + input.elements * 4 + 16, 0) + permuted);
  let base = job.base ? loadFloat(reader, buffers, arena, job.base, job.nonFinite, warnings) : undefined;
  let models = job.models.map((m) => loadFloat(reader, buffers, arena, m, job.nonFinite, warnings));
  if (job.embedding) {
    const read = base ? [base, ...models] : models;
    const width = outElements / job.embedding.rows;
    const laidOut = read.map((_, i) => permuteRows(job.embedding!, i, read, width, arena.floats(outElements)));
    if (job.embedding.slerpT !== undefined) {
      const merged = slerpEmbedding(job.embedding, laidOut, read, width);
      return finish(job, merged, buffers, warnings);
    }
    [base, models] = base ? [laidOut[0], laidOut.slice(1)] : [undefined, laidOut];
  }
  const merged = method.mergeTensor({
    name: job.name,
    shape: job.shape,
    base,
    models,
    modelParameters: job.modelParameters,
    globalParameters: job.globalParameters,
    seed: job.seed,
    rowParameters: job.rowParameters,
    halfOutput: job.outDtype === 'F16' || job.outDtype === 'BF16',
  });
  return finish(job, merged, buffers, warnings);
}

/**
 * mergekit's embed_slerp: SLERP of the base's and the other model's rows in the output's order,
 * a token a model lacks being a zero row there (so the angle is mergekit's); the rows that not
 * both have (or that a tokens: entry forces) then take their fallback, as its linear fill does.
 */
function slerpEmbedding(embedding: EmbeddingRows, laidOut: Float32Array[], read: Float32Array[], width: number): Float32Array {
  laidOut.forEach((values, i) => {
    const own = embedding.sourceRows[i];
    for (let r = 0; r < embedding.rows; r++) if (own[r] < 0) values.fill(0, r * width, r * width + width);
  });
  const merged = slerp(embedding.slerpT!, laidOut[0], laidOut[1], new Float32Array(laidOut[0].length));
  for (let r = 0; r < embedding.rows; r++) {
    if (embedding.forced[r] === 0 && embedding.sourceRows.every((rows) => rows[r] >= 0)) continue;
    fallbackInto(embedding, r, read, width, merged, r * width);
  }
  return merged;
}

/** Checks and encodes a merged tensor into a buffer of its own. */
function finish(job: TensorJob, merged: Float32Array, buffers: BufferPool, warnings: NonFiniteWarning[]): TensorResult {
  if (!isFloatDtype(job.outDtype)) throw new Error(`tensor "${job.name}": cannot write a merged tensor as ${job.outDtype}`);
  // An input's NaN/Inf (allowed under 'warn') carries into the output; that is reported once, as the input's.
  if (warnings.length === 0) checkMergedOutput(job.name, merged, job.nonFinite, warnings, job.outDtype);
  const encoded = encodeFromFloat32(merged, job.outDtype);
  // Kernel memory is reused by the next job: what leaves the thread is a copy in a buffer of its own.
  if (encoded.buffer !== merged.buffer) return { bytes: encoded, warnings };
  const bytes = buffers.take(encoded.byteLength);
  bytes.set(encoded);
  return { bytes, warnings };
}
