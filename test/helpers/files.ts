/** Test helpers: temporary directories and tiny checkpoints written from plain arrays. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint, TensorReader } from '../../src/engine/checkpoint/checkpoint';
import { decodeToFloat32, encodeFromFloat32, FloatDtype } from '../../src/engine/checkpoint/dtype';
import { writeSafetensorsFile } from '../../src/engine/checkpoint/writer';

const created: string[] = [];

export function tempDir(prefix = 'apl-merge-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export type TinyTensors = Record<string, { shape: number[]; values: number[]; dtype?: FloatDtype }>;

/** Writes `dir/model.safetensors` (and a config.json) from plain arrays. */
export function writeTinyModel(dir: string, tensors: TinyTensors, config: Record<string, unknown> = { model_type: 'tiny' }): string {
  mkdirSync(dir, { recursive: true });
  writeSafetensorsFile(
    join(dir, 'model.safetensors'),
    Object.entries(tensors).map(([name, t]) => ({
      name,
      shape: t.shape,
      dtype: t.dtype ?? 'F32',
      data: encodeFromFloat32(Float32Array.from(t.values), t.dtype ?? 'F32'),
    })),
    { format: 'pt' },
  );
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

/** Builds a raw safetensors file from a header object (or text) and data bytes, for bad-input tests. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), options: { declaredLength?: bigint } = {}): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const body = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + body.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, options.declaredLength ?? BigInt(body.byteLength), true);
  out.set(body, 8);
  out.set(data, 8 + body.byteLength);
  return out;
}

export function writeBytes(path: string, bytes: Uint8Array): string {
  writeFileSync(path, bytes);
  return path;
}

/** A float tensor of a checkpoint (file or directory), decoded to plain numbers. */
export function readTensorValues(path: string, name: string): number[] {
  const location = openCheckpoint(path).tensors.get(name);
  if (!location) throw new Error(`${path} has no tensor "${name}"`);
  const reader = new TensorReader();
  try {
    return Array.from(decodeToFloat32(reader.read(location), location.dtype as FloatDtype));
  } finally {
    reader.close();
  }
}

/** Every F32 tensor of a checkpoint, by name. */
export function readAllTensors(path: string): Map<string, Float32Array> {
  const checkpoint = openCheckpoint(path);
  const reader = new TensorReader();
  try {
    return new Map(checkpoint.names.map((n) => [n, decodeToFloat32(reader.read(checkpoint.tensors.get(n)!), 'F32')]));
  } finally {
    reader.close();
  }
}
