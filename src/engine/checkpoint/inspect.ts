/** What `apl-merge inspect` reports about a checkpoint. */
import { basename } from 'node:path';
import { openCheckpoint, parameterCount } from './checkpoint';
import { Dtype } from './dtype';
import { sha256File } from './files';

export interface CheckpointReport {
  path: string;
  layout: 'single-file' | 'sharded';
  files: Array<{ name: string; bytes: number; sha256: string | undefined }>;
  tensors: Array<{ name: string; dtype: Dtype; shape: number[]; file: string }>;
  parameterCount: number;
  dataBytes: number;
  dtypes: Partial<Record<Dtype, number>>;
  metadata: Record<string, string> | undefined;
}

export function inspectCheckpoint(path: string, options: { hash?: boolean } = {}): CheckpointReport {
  const checkpoint = openCheckpoint(path);
  const dtypes: Partial<Record<Dtype, number>> = {};
  for (const t of checkpoint.tensors.values()) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + t.elements;
  return {
    path,
    layout: checkpoint.shards.length > 1 ? 'sharded' : 'single-file',
    files: checkpoint.shards.map((s) => ({ name: basename(s.file), bytes: s.fileSize, sha256: options.hash === false ? undefined : sha256File(s.file) })),
    tensors: checkpoint.names.map((n) => {
      const t = checkpoint.tensors.get(n)!;
      return { name: n, dtype: t.dtype, shape: t.shape, file: basename(t.file) };
    }),
    parameterCount: parameterCount(checkpoint),
    dataBytes: checkpoint.totalBytes,
    dtypes,
    metadata: checkpoint.metadata,
  };
}
