/**
 * One output tensor's work, as a plain serialisable description, and the function that does it.
 * The same function runs inline and inside worker threads, so both paths compute identical bytes.
 */
import { decodeToFloat32, Dtype, encodeFromFloat32, FloatDtype, isFloatDtype } from '../checkpoint/dtype';
import { TensorReader } from '../checkpoint/checkpoint';
import { CheckpointError } from '../errors';
import { getMergeMethod } from '../methods/registry';
import { ParameterValue } from '../methods/types';

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

function loadFloat(reader: TensorReader, buffers: BufferPool, input: TensorInput, policy: NonFinitePolicy, warnings: NonFiniteWarning[]): Float32Array {
  const raw = reader.read(input, buffers.take(input.byteLength));
  const values = decodeToFloat32(raw, input.dtype as FloatDtype);
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
  if (count > 0) {
    if (policy === 'error') {
      throw new CheckpointError(input.file, `${count} non-finite value(s) (NaN or Inf), first at flat index ${first}`, input.name);
    }
    warnings.push({ label: input.label, tensor: input.name, count });
  }
  return values;
}

export function runTensorJob(job: TensorJob, reader: TensorReader, buffers: BufferPool): TensorResult {
  const warnings: NonFiniteWarning[] = [];
  if (job.kind === 'copy') {
    const source = job.base ?? job.models[0];
    return { bytes: reader.read(source, buffers.take(source.byteLength)), warnings };
  }
  const method = getMergeMethod(job.method);
  const base = job.base ? loadFloat(reader, buffers, job.base, job.nonFinite, warnings) : undefined;
  const models = job.models.map((m) => loadFloat(reader, buffers, m, job.nonFinite, warnings));
  const merged = method.mergeTensor({
    name: job.name,
    shape: job.shape,
    base,
    models,
    modelParameters: job.modelParameters,
    globalParameters: job.globalParameters,
    seed: job.seed,
  });
  if (!isFloatDtype(job.outDtype)) throw new Error(`tensor "${job.name}": cannot write a merged tensor as ${job.outDtype}`);
  const bytes = encodeFromFloat32(merged, job.outDtype);
  // Inputs not backing the output are free again (the output's buffer returns after it is written).
  for (const input of base ? [base, ...models] : models) {
    if (input.buffer !== bytes.buffer) buffers.give(input.buffer as ArrayBuffer);
  }
  return { bytes, warnings };
}
