/**
 * The safetensors format, read and written by hand (no maintained npm package does it).
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON (padded with spaces), then the
 * raw little-endian tensor data. Validation follows huggingface/safetensors' checklist and goes
 * further: every error names the file and tensor, duplicate keys and a header not starting with
 * `{` are rejected.
 */
import { closeSync, fstatSync, openSync, read as fsRead, readSync } from 'node:fs';
import { CheckpointError } from '../errors';
import { Dtype, dtypeSize, isDtype } from './dtype';
import { findDuplicateKey } from './json-keys';

/** safetensors' own limit on the header, against allocation bombs. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Number of elements (product of the shape). */
  elements: number;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Tensors in the order of their data in the file. */
  tensors: TensorInfo[];
  byName: Map<string, TensorInfo>;
  metadata: Record<string, string> | undefined;
}

const TENSOR_FIELDS = new Set(['dtype', 'shape', 'data_offsets']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a header given its 8-byte prefix's value, the header bytes and the file's size.
 * Pure: no IO, so it is tested (and fuzzed) on byte arrays directly.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const fail = (reason: string, tensor?: string): never => {
    throw new CheckpointError(file, reason, tensor);
  };
  const headerLength = headerBytes.byteLength;
  const dataStart = 8 + headerLength;
  if (headerBytes[0] !== 0x7b) fail('header does not start with "{"');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  // A text that starts with "{" and parses is a JSON object (the check above is that test).
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    // V8's message quotes the text it failed on; a file that is not safetensors must not have its
    // bytes echoed back to whoever named it, so only the position is kept.
    const position = /position (\d+)/.exec((err as Error).message)?.[1];
    return fail(`header is not valid JSON${position ? ` (at byte ${position} of the header)` : ''}`);
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate) fail(`header has the key "${duplicate.key}" twice${duplicate.path ? ` in ${duplicate.path}` : ''}`);

  let metadata: Record<string, string> | undefined;
  const tensors: Array<TensorInfo & { begin: number; end: number }> = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) fail('__metadata__ is not an object of strings');
      metadata = {};
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(`__metadata__ value for "${key}" is not a string`);
        metadata[key] = value as string;
      }
      continue;
    }
    if (!isPlainObject(entry)) return fail('entry is not an object', name);
    for (const field of Object.keys(entry)) {
      if (!TENSOR_FIELDS.has(field)) fail(`unexpected field "${field}"`, name);
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') return fail('missing dtype', name);
    if (!isDtype(dtype)) return fail(`unknown dtype "${dtype}"`, name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      return fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      return fail(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`, name);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`data_offsets [${begin}, ${end}] end before begin`, name);
    let elements = 1;
    for (const d of shape as number[]) {
      elements *= d;
      if (!Number.isSafeInteger(elements)) fail(`shape ${JSON.stringify(shape)} overflows`, name);
    }
    const byteLength = elements * dtypeSize(dtype);
    if (!Number.isSafeInteger(byteLength)) fail(`shape ${JSON.stringify(shape)} overflows`, name);
    if (end - begin !== byteLength) {
      fail(
        `shape ${JSON.stringify(shape)} × ${dtype} is ${byteLength} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
        name,
      );
    }
    if (dataStart + end > fileSize) {
      fail(`data_offsets [${begin}, ${end}] run past the end of the file (${fileSize - dataStart} data bytes)`, name);
    }
    tensors.push({ name, dtype, shape: shape as number[], elements, offset: dataStart + begin, byteLength, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: string | undefined;
  for (const t of tensors) {
    if (t.begin < expected) fail(`data [${t.begin}, ${t.end}] overlaps tensor "${previous}"`, t.name);
    if (t.begin > expected) fail(`data starts at ${t.begin} but the previous data ends at ${expected} (a hole)`, t.name);
    expected = t.end;
    previous = t.name;
  }
  if (dataStart + expected !== fileSize) {
    fail(`${fileSize - dataStart - expected} bytes after the last tensor's data (file has ${fileSize} bytes, expected ${dataStart + expected})`);
  }
  const clean: TensorInfo[] = tensors.map(({ name, dtype, shape, elements, offset, byteLength }) => ({
    name,
    dtype,
    shape,
    elements,
    offset,
    byteLength,
  }));
  return { file, fileSize, tensors: clean, byName: new Map(clean.map((t) => [t.name, t])), metadata };
}

/** Reads `length` bytes at `position` completely (readSync may return short counts). */
export function readFully(fd: number, into: Uint8Array, position: number, file: string, what: string): void {
  for (let done = 0; done < into.byteLength; ) done += bytesRead(readSync(fd, into, done, into.byteLength - done, position + done), file, what);
}

/** readFully on libuv's thread pool: the calling thread goes on while the bytes arrive. */
export async function readFullyAsync(fd: number, into: Uint8Array, position: number, file: string, what: string): Promise<void> {
  const read = (offset: number) => new Promise<number>((resolve, reject) => fsRead(fd, into, offset, into.byteLength - offset, position + offset, (err, n) => (err ? reject(err) : resolve(n))));
  for (let done = 0; done < into.byteLength; ) done += bytesRead(await read(done), file, what);
}

function bytesRead(n: number, file: string, what: string): number {
  if (n === 0) throw new CheckpointError(file, `unexpected end of file while reading ${what}`);
  return n;
}

/** Reads and validates a file's header only (no tensor data is read). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new CheckpointError(file, `cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) throw new CheckpointError(file, `truncated: ${fileSize} bytes, a safetensors file has at least 8`);
    const prefix = new Uint8Array(8);
    readFully(fd, prefix, 0, file, 'the header length');
    const declared = new DataView(prefix.buffer).getBigUint64(0, true);
    if (declared > BigInt(MAX_HEADER_BYTES)) {
      // The declared length is the file's first 8 bytes: not echoed, since the file may be anything.
      throw new CheckpointError(file, `not a safetensors file: its declared header length exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const headerLength = Number(declared);
    if (8 + headerLength > fileSize) {
      throw new CheckpointError(file, `not a safetensors file, or truncated: its declared header length runs past the end of the file (${fileSize} bytes)`);
    }
    if (headerLength === 0) throw new CheckpointError(file, 'header is empty');
    const headerBytes = new Uint8Array(headerLength);
    readFully(fd, headerBytes, 8, file, 'the header');
    return parseSafetensorsHeader(file, headerBytes, fileSize);
  } finally {
    closeSync(fd);
  }
}

/** Serialises a header: tensors get contiguous offsets in the given order; padded to 8 bytes. */
export function buildSafetensorsHeader(
  tensors: ReadonlyArray<{ name: string; dtype: Dtype; shape: readonly number[] }>,
  metadata?: Record<string, string>,
): { bytes: Uint8Array; dataBytes: number; offsets: Map<string, [number, number]> } {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new Error('a tensor cannot be named "__metadata__"');
    if (offsets.has(t.name)) throw new Error(`tensor "${t.name}" given twice`);
    const byteLength = t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
    offsets.set(t.name, [cursor, cursor + byteLength]);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [cursor, cursor + byteLength] };
    cursor += byteLength;
  }
  let json = JSON.stringify(header);
  const unpadded = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (unpadded % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const bytes = new Uint8Array(8 + body.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.byteLength), true);
  bytes.set(body, 8);
  return { bytes, dataBytes: cursor, offsets };
}
