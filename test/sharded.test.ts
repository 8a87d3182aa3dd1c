/**
 * Sharded checkpoints, written and read: shard sizes within the limit, a tensor larger than the
 * limit alone in its shard, the index's total_size, and precise errors (file and tensor named) for
 * broken sharded inputs: a missing shard, an index naming a tensor its shard lacks, a tensor in two
 * shards, a tensor no index lists.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, TensorReader } from '../src/engine/checkpoint/checkpoint';
import { readSafetensorsHeader } from '../src/engine/checkpoint/safetensors';
import { CheckpointWriter, TensorSpec, writeSafetensorsFile } from '../src/engine/checkpoint/writer';
import { removeTempDirs, tempDir } from './helpers/files';
import { expectCheckpointError } from './helpers/checkpoint-errors';

afterAll(removeTempDirs);

// Data sizes 400, 400, 400, 2400 (over the 1000-byte limit), 100 and 600 bytes of F32.
const SPECS: TensorSpec[] = [
  { name: 'a', dtype: 'F32', shape: [100] },
  { name: 'b', dtype: 'F32', shape: [10, 10] },
  { name: 'c', dtype: 'F32', shape: [100] },
  { name: 'huge', dtype: 'F32', shape: [600] },
  { name: 'd', dtype: 'F32', shape: [25] },
  { name: 'e', dtype: 'F32', shape: [150] },
];
const bytesOf = (spec: TensorSpec) => spec.shape.reduce((x, y) => x * y, 1) * 4;
const valuesOf = (spec: TensorSpec, k: number) => new Uint8Array(Float32Array.from({ length: bytesOf(spec) / 4 }, (_, i) => k * 1000 + i).buffer);

function writeSharded(dir: string, maxShardBytes = 1000): void {
  const writer = new CheckpointWriter(dir, SPECS, { maxShardBytes });
  SPECS.forEach((spec, k) => writer.write(spec.name, valuesOf(spec, k)));
  writer.finish();
}

describe('sharded output', () => {
  it('fills shards up to the limit in order, gives a tensor over the limit a shard of its own, and records total_size', () => {
    const dir = tempDir();
    writeSharded(dir);
    const shards = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards).toEqual(['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors']);
    const contents = shards.map((s) => readSafetensorsHeader(join(dir, s)).tensors.map((t) => [t.name, t.byteLength]));
    // a + b fit (800); c would make 1200; huge alone (2400 > 1000); d + e = 700.
    expect(contents).toEqual([[['a', 400], ['b', 400]], [['c', 400]], [['huge', 2400]], [['d', 100], ['e', 600]]]);
    // Every shard of more than one tensor is within the limit.
    for (const shard of contents.filter((c) => c.length > 1)) expect(shard.reduce((sum, [, bytes]) => sum + (bytes as number), 0)).toBeLessThanOrEqual(1000);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(SPECS.reduce((sum, s) => sum + bytesOf(s), 0));
    expect(index.weight_map).toEqual({ a: shards[0], b: shards[0], c: shards[1], huge: shards[2], d: shards[3], e: shards[3] });
    // Read back through the index, every value is where it was written.
    const checkpoint = openCheckpoint(dir);
    const reader = new TensorReader();
    try {
      SPECS.forEach((spec, k) => expect(reader.read(checkpoint.tensors.get(spec.name)!)).toEqual(valuesOf(spec, k)));
    } finally {
      reader.close();
    }
  });
});

describe('broken sharded input: a precise error naming file and tensor', () => {
  const broken = (change: (dir: string, index: { weight_map: Record<string, string> }) => void) => {
    const dir = tempDir();
    writeSharded(dir);
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    change(dir, index);
    writeFileSync(indexFile, JSON.stringify(index));
    return { dir, indexFile };
  };

  it('a missing shard', () => {
    const { dir } = broken((d) => rmSync(join(d, 'model-00003-of-00004.safetensors')));
    expectCheckpointError(() => openCheckpoint(dir), join(dir, 'model-00003-of-00004.safetensors'), /^cannot open \(ENOENT\)$/);
  });

  it('an index naming a tensor its shard lacks', () => {
    const { dir, indexFile } = broken((_d, index) => (index.weight_map.ghost = 'model-00001-of-00004.safetensors'));
    expectCheckpointError(() => openCheckpoint(dir), indexFile, /^listed in weight_map but absent from model-00001-of-00004\.safetensors$/, 'ghost');
  });

  it('an index putting a tensor in the wrong shard', () => {
    // "a" is in the first shard (still read, for "b"); the index says the fourth.
    const { dir, indexFile } = broken((_d, index) => (index.weight_map.a = 'model-00004-of-00004.safetensors'));
    expectCheckpointError(() => openCheckpoint(dir), indexFile, /^weight_map says model-00004-of-00004\.safetensors but the tensor is in model-00001-of-00004\.safetensors$/, 'a');
  });

  it('a tensor in two shards', () => {
    // A fifth file, listed in the index for another tensor, that holds "d" too.
    const { dir } = broken((d, index) => {
      writeSafetensorsFile(join(d, 'model-extra.safetensors'), [{ name: 'd', dtype: 'F32', shape: [1], data: new Uint8Array(4) }, { name: 'extra', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
      index.weight_map.extra = 'model-extra.safetensors';
    });
    expectCheckpointError(() => openCheckpoint(dir), join(dir, 'model-extra.safetensors'), new RegExp(`^also present in ${join(dir, 'model-00004-of-00004.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), 'd');
  });

  it('a tensor in a shard that the index does not list', () => {
    const { dir } = broken((_d, index) => delete index.weight_map.b);
    expectCheckpointError(() => openCheckpoint(dir), join(dir, 'model-00001-of-00004.safetensors'), /^not listed in model\.safetensors\.index\.json$/, 'b');
  });

  it('an index that is not JSON, or has no weight_map, or names a shard outside its directory', () => {
    const dir = tempDir();
    writeSharded(dir);
    const indexFile = join(dir, 'model.safetensors.index.json');
    writeFileSync(indexFile, '{"weight_map": ');
    expectCheckpointError(() => openCheckpoint(dir), indexFile, /^is not valid JSON/);
    writeFileSync(indexFile, '{"metadata": {}}');
    expectCheckpointError(() => openCheckpoint(dir), indexFile, /^has no "weight_map" object$/);
    writeFileSync(indexFile, JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
    expectCheckpointError(() => openCheckpoint(dir), indexFile, /^weight_map names an invalid shard "\.\.\/elsewhere\.safetensors"$/, 'a');
  });
});
