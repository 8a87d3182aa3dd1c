/**
 * Checkpoints in the Hugging Face layouts: a bare `.safetensors` file, a directory holding
 * `model.safetensors`, or a directory of shards listed by `model.safetensors.index.json`.
 * Opening one reads headers only; tensor data is read one tensor at a time with positioned reads.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CheckpointError } from '../errors';
import { readFully, readFullyAsync, readSafetensorsHeader, SafetensorsHeader, TensorInfo } from './safetensors';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export interface TensorLocation extends TensorInfo {
  file: string;
}

export interface Checkpoint {
  /** The path the user gave. */
  path: string;
  /** The directory holding the checkpoint (where config.json would be). */
  directory: string;
  shards: SafetensorsHeader[];
  /** Tensor names in file order (shard by shard, then by data offset). */
  names: string[];
  tensors: Map<string, TensorLocation>;
  /** `__metadata__` of the first shard. */
  metadata: Record<string, string> | undefined;
  totalBytes: number;
}

export function openCheckpoint(path: string): Checkpoint {
  const absolute = resolve(path);
  if (!existsSync(absolute)) throw new CheckpointError(path, 'does not exist');
  if (statSync(absolute).isDirectory()) {
    const index = join(absolute, INDEX_FILE_NAME);
    if (existsSync(index)) return fromIndex(path, index);
    const single = join(absolute, SINGLE_FILE_NAME);
    if (existsSync(single)) return fromShards(path, absolute, [single]);
    throw new CheckpointError(path, `directory has neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}`);
  }
  if (basename(absolute).endsWith('.index.json')) return fromIndex(path, absolute);
  return fromShards(path, dirname(absolute), [absolute]);
}

function fromIndex(path: string, indexFile: string): Checkpoint {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (err) {
    throw new CheckpointError(indexFile, `is not valid JSON (${(err as Error).message})`);
  }
  const weightMap = (parsed as { weight_map?: unknown })?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError(indexFile, 'has no "weight_map" object');
  }
  const directory = dirname(indexFile);
  const shardNames: string[] = [];
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new CheckpointError(indexFile, `weight_map names an invalid shard ${JSON.stringify(shard)}`, tensor);
    }
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }
  shardNames.sort();
  const checkpoint = fromShards(path, directory, shardNames.map((s) => join(directory, s)));
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, string>)) {
    const location = checkpoint.tensors.get(tensor);
    if (!location) throw new CheckpointError(indexFile, `listed in weight_map but absent from ${shard}`, tensor);
    if (basename(location.file) !== shard) {
      throw new CheckpointError(indexFile, `weight_map says ${shard} but the tensor is in ${basename(location.file)}`, tensor);
    }
  }
  for (const name of checkpoint.names) {
    if (!(name in (weightMap as Record<string, string>))) {
      throw new CheckpointError(checkpoint.tensors.get(name)!.file, `not listed in ${INDEX_FILE_NAME}`, name);
    }
  }
  return checkpoint;
}

function fromShards(path: string, directory: string, files: string[]): Checkpoint {
  const shards = files.map((f) => readSafetensorsHeader(f));
  const tensors = new Map<string, TensorLocation>();
  const names: string[] = [];
  let totalBytes = 0;
  for (const shard of shards) {
    for (const t of shard.tensors) {
      const earlier = tensors.get(t.name);
      if (earlier) throw new CheckpointError(shard.file, `also present in ${earlier.file}`, t.name);
      tensors.set(t.name, { ...t, file: shard.file });
      names.push(t.name);
      totalBytes += t.byteLength;
    }
  }
  return { path, directory, shards, names, tensors, metadata: shards[0]?.metadata, totalBytes };
}

export function parameterCount(checkpoint: Checkpoint): number {
  let count = 0;
  for (const t of checkpoint.tensors.values()) count += t.elements;
  return count;
}

/**
 * Positioned reads of whole tensors, keeping one descriptor per file open.
 * Buffers are fresh ArrayBuffers (never pooled Buffers), so typed-array views are aligned.
 */
export class TensorReader {
  private readonly fds = new Map<string, number>();

  read(location: TensorLocation, into?: Uint8Array): Uint8Array {
    const target = into && into.byteLength === location.byteLength ? into : new Uint8Array(location.byteLength);
    readFully(this.descriptor(location.file), target, location.offset, location.file, `tensor "${location.name}"`);
    return target;
  }

  /** As read, on the thread pool; `into` must stay valid until the promise settles. */
  async readAsync(location: TensorLocation, into?: Uint8Array): Promise<Uint8Array> {
    const target = into && into.byteLength === location.byteLength ? into : new Uint8Array(location.byteLength);
    await readFullyAsync(this.descriptor(location.file), target, location.offset, location.file, `tensor "${location.name}"`);
    return target;
  }

  private descriptor(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openSync(file, 'r');
      this.fds.set(file, fd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
