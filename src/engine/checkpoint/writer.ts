/**
 * Streams a checkpoint to disk tensor by tensor. The shard plan is fixed up front from the tensor
 * specs (names, dtypes, shapes), so each shard's header is written first and data follows as it is
 * produced; nothing but the tensor being written is held in memory. Every file is fsynced, and its
 * sha256 is computed on the way out. The caller writes into a staging directory and renames it
 * into place (see `publishDirectory`), so a reader never sees a half-written checkpoint.
 */
import { createHash, Hash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { writingTo } from '../errors';
import { join } from 'node:path';
import { Dtype, dtypeSize } from './dtype';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from './checkpoint';
import { buildSafetensorsHeader } from './safetensors';

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
}

export interface WrittenFile {
  name: string;
  bytes: number;
  sha256: string;
}

export interface WriterOptions {
  /** Largest shard's data size in bytes; a single tensor larger than this gets a shard of its own. */
  maxShardBytes?: number;
  metadata?: Record<string, string>;
}

export const DEFAULT_MAX_SHARD_BYTES = 5 * 1024 ** 3;

function specBytes(spec: TensorSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1) * dtypeSize(spec.dtype);
}

/** Splits specs (in order) into shards of at most maxShardBytes of data each. */
export function planShards(specs: readonly TensorSpec[], maxShardBytes: number): TensorSpec[][] {
  const shards: TensorSpec[][] = [];
  let current: TensorSpec[] = [];
  let currentBytes = 0;
  for (const spec of specs) {
    const bytes = specBytes(spec);
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(spec);
    currentBytes += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

export function shardFileName(index: number, count: number): string {
  if (count === 1) return SINGLE_FILE_NAME;
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

interface OpenShard {
  name: string;
  fd: number;
  hash: Hash;
  bytes: number;
  specs: TensorSpec[];
  next: number;
}

export class CheckpointWriter {
  private readonly shards: TensorSpec[][];
  private readonly shardOf = new Map<string, number>();
  private readonly written: WrittenFile[] = [];
  private open: OpenShard | undefined;
  private shardIndex = -1;
  private finished = false;

  constructor(
    private readonly directory: string,
    specs: readonly TensorSpec[],
    private readonly options: WriterOptions = {},
  ) {
    this.shards = planShards(specs, options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
    this.shards.forEach((shard, i) => shard.forEach((s) => this.shardOf.set(s.name, i)));
  }

  get shardCount(): number {
    return this.shards.length;
  }

  /** Writes the next tensor; tensors must come in the order of the specs. */
  write(name: string, data: Uint8Array): void {
    const shard = this.shardOf.get(name);
    if (shard === undefined) throw new Error(`tensor "${name}" is not in the output plan`);
    while (this.shardIndex < shard) this.openNextShard();
    const open = this.open!;
    const spec = open.specs[open.next];
    if (spec.name !== name) throw new Error(`tensor "${name}" written out of order (expected "${spec.name}")`);
    const expected = specBytes(spec);
    if (data.byteLength !== expected) {
      throw new Error(`tensor "${name}": ${data.byteLength} bytes given, ${spec.dtype} ${JSON.stringify(spec.shape)} needs ${expected}`);
    }
    this.append(open, data);
    open.next++;
  }

  /** Closes the last shard, writes the index for sharded output, and lists the files written. */
  finish(): WrittenFile[] {
    if (this.finished) return this.written;
    while (this.shardIndex < this.shards.length - 1) this.openNextShard();
    this.closeOpenShard();
    if (this.shards.length > 1) {
      const weightMap: Record<string, string> = {};
      let totalSize = 0;
      this.shards.forEach((shard, i) => {
        for (const spec of shard) {
          weightMap[spec.name] = shardFileName(i, this.shards.length);
          totalSize += specBytes(spec);
        }
      });
      const text = JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n';
      const path = join(this.directory, INDEX_FILE_NAME);
      writingTo(path, () => {
        writeFileSync(path, text);
        fsyncFile(path);
      });
      this.written.push({
        name: INDEX_FILE_NAME,
        bytes: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
      });
    }
    this.finished = true;
    return this.written;
  }

  /** Releases file descriptors after a failure; the caller removes the staging directory. */
  abort(): void {
    if (this.open) {
      closeSync(this.open.fd);
      this.open = undefined;
    }
  }

  private openNextShard(): void {
    this.closeOpenShard();
    this.shardIndex++;
    const specs = this.shards[this.shardIndex];
    const name = shardFileName(this.shardIndex, this.shards.length);
    const fd = writingTo(join(this.directory, name), () => openSync(join(this.directory, name), 'wx'));
    this.open = { name, fd, hash: createHash('sha256'), bytes: 0, specs, next: 0 };
    this.append(this.open, buildSafetensorsHeader(specs, this.options.metadata).bytes);
  }

  private closeOpenShard(): void {
    const open = this.open;
    if (!open) return;
    if (open.next !== open.specs.length) {
      throw new Error(`shard ${open.name} closed with ${open.specs.length - open.next} tensors unwritten (first: "${open.specs[open.next].name}")`);
    }
    writingTo(join(this.directory, open.name), () => fsyncSync(open.fd));
    closeSync(open.fd);
    this.written.push({ name: open.name, bytes: open.bytes, sha256: open.hash.digest('hex') });
    this.open = undefined;
  }

  private append(open: OpenShard, data: Uint8Array): void {
    let done = 0;
    writingTo(join(this.directory, open.name), () => {
      while (done < data.byteLength) done += writeSync(open.fd, data, done, data.byteLength - done);
    });
    open.hash.update(data);
    open.bytes += data.byteLength;
  }
}

export function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes one whole safetensors file (for small tensors: tests, fixtures, artifacts). */
export function writeSafetensorsFile(
  path: string,
  tensors: ReadonlyArray<TensorSpec & { data: Uint8Array }>,
  metadata?: Record<string, string>,
): WrittenFile {
  for (const t of tensors) {
    if (t.data.byteLength !== specBytes(t)) {
      throw new Error(`tensor "${t.name}": ${t.data.byteLength} bytes given, ${t.dtype} ${JSON.stringify(t.shape)} needs ${specBytes(t)}`);
    }
  }
  const { bytes } = buildSafetensorsHeader(tensors, metadata);
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  let total = 0;
  try {
    for (const chunk of [bytes, ...tensors.map((t) => t.data)]) {
      let done = 0;
      while (done < chunk.byteLength) done += writeSync(fd, chunk, done, chunk.byteLength - done);
      hash.update(chunk);
      total += chunk.byteLength;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { name: path, bytes: total, sha256: hash.digest('hex') };
}
