import { closeSync, openSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, TensorReader } from '../src/engine/checkpoint/checkpoint';
import { decodeToFloat32, encodeFromFloat32 } from '../src/engine/checkpoint/dtype';
import { readFully, readSafetensorsHeader } from '../src/engine/checkpoint/safetensors';
import { writeSafetensorsFile } from '../src/engine/checkpoint/writer';
import { rawSafetensors, removeTempDirs, tempDir, writeBytes } from './helpers/files';
import { expectCheckpointError } from './helpers/checkpoint-errors';

afterAll(removeTempDirs);

describe('safetensors round trip', () => {
  it('writes and reads every dtype, shapes and __metadata__ unchanged', () => {
    const dir = tempDir();
    const file = join(dir, 'all.safetensors');
    const f32 = Float32Array.from([1.5, -2.25, 3e-8, 65504]);
    const tensors = [
      { name: 'f32', dtype: 'F32' as const, shape: [2, 2], data: encodeFromFloat32(f32, 'F32') },
      { name: 'f16', dtype: 'F16' as const, shape: [4], data: encodeFromFloat32(f32, 'F16') },
      { name: 'bf16', dtype: 'BF16' as const, shape: [4, 1], data: encodeFromFloat32(f32, 'BF16') },
      { name: 'i64', dtype: 'I64' as const, shape: [2], data: new Uint8Array(new BigInt64Array([-5n, 1n << 40n]).buffer) },
      { name: 'i32', dtype: 'I32' as const, shape: [3], data: new Uint8Array(new Int32Array([-1, 0, 7]).buffer) },
      { name: 'u8', dtype: 'U8' as const, shape: [3], data: Uint8Array.from([0, 128, 255]) },
      { name: 'bool', dtype: 'BOOL' as const, shape: [2], data: Uint8Array.from([1, 0]) },
      { name: 'scalar', dtype: 'F32' as const, shape: [], data: encodeFromFloat32(Float32Array.from([42]), 'F32') },
      { name: 'empty', dtype: 'F32' as const, shape: [0, 3], data: new Uint8Array(0) },
    ];
    writeSafetensorsFile(file, tensors, { format: 'pt', note: 'héllo' });
    const header = readSafetensorsHeader(file);
    expect(header.metadata).toEqual({ format: 'pt', note: 'héllo' });
    expect(header.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    const checkpoint = openCheckpoint(file);
    const reader = new TensorReader();
    for (const t of tensors) {
      const location = checkpoint.tensors.get(t.name)!;
      expect(location.dtype).toBe(t.dtype);
      expect(location.shape).toEqual(t.shape);
      expect(Buffer.from(reader.read(location))).toEqual(Buffer.from(t.data));
    }
    reader.close();
    const f16 = decodeToFloat32(new TensorReader().read(checkpoint.tensors.get('f16')!), 'F16');
    // 3e-8 lies just above half the smallest subnormal (2^-25), so it rounds up to 2^-24.
    expect(Array.from(f16)).toEqual([1.5, -2.25, 2 ** -24, 65504]);
  });

  it('pads the header to 8 bytes with spaces', () => {
    const dir = tempDir();
    const file = join(dir, 'pad.safetensors');
    writeSafetensorsFile(file, [{ name: 'a', dtype: 'U8', shape: [1], data: Uint8Array.from([9]) }]);
    const bytes = require('node:fs').readFileSync(file) as Buffer;
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(bytes.subarray(8, 8 + n).toString().trimEnd().endsWith('}')).toBe(true);
  });
});

describe('safetensors bad input: a precise error naming file and tensor', () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: Array<{ title: string; bytes: () => Uint8Array; reason: RegExp; tensor?: string }> = [
    { title: 'fewer than 8 bytes', bytes: () => Uint8Array.from([1, 2, 3]), reason: /truncated: 3 bytes/ },
    { title: 'header length beyond the file', bytes: () => rawSafetensors({}, undefined, { declaredLength: 1000n }), reason: /declared header length runs past the end of the file \(\d+ bytes\)/ },
    { title: 'header length over the limit', bytes: () => rawSafetensors({}, undefined, { declaredLength: 1n << 40n }), reason: /declared header length exceeds the 100000000-byte limit/ },
    { title: 'invalid JSON', bytes: () => rawSafetensors('{"a": '), reason: /not valid JSON/ },
    { title: 'a header not starting with {', bytes: () => rawSafetensors(' {}'), reason: /does not start with "\{"/ },
    { title: 'a header that is a JSON array', bytes: () => rawSafetensors('[1]'), reason: /does not start with/ },
    { title: 'invalid UTF-8', bytes: () => { const b = rawSafetensors('{"\u00e9":1}'); b[10] = 0xff; return b; }, reason: /not valid UTF-8/ },
    { title: 'a duplicate tensor name', bytes: () => rawSafetensors('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)), reason: /has the key "w" twice/ },
    { title: 'an unknown dtype', bytes: () => rawSafetensors({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)), reason: /unknown dtype "F128"/, tensor: 'w' },
    { title: 'a negative dimension', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), reason: /not a list of non-negative integers/, tensor: 'w' },
    { title: 'offsets past the end', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), reason: /run past the end of the file/, tensor: 'w' },
    { title: 'offsets end before begin', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, f32(2)), reason: /end before begin/, tensor: 'w' },
    { title: 'shape × dtype size mismatch', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), reason: /is 12 bytes but data_offsets \[0, 8\] span 8/, tensor: 'w' },
    {
      title: 'overlapping data',
      bytes: () => rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
      reason: /overlaps tensor "a"/,
      tensor: 'b',
    },
    {
      title: 'a hole between tensors',
      bytes: () => rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32(3)),
      reason: /previous data ends at 4 \(a hole\)/,
      tensor: 'b',
    },
    { title: 'trailing bytes after the data', bytes: () => rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), reason: /4 bytes after the last tensor's data/ },
    { title: 'an unexpected field', bytes: () => rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4], extra: 1 } }, f32(1)), reason: /unexpected field "extra"/, tensor: 'a' },
    { title: 'a non-string metadata value', bytes: () => rawSafetensors({ __metadata__: { n: 1 } }), reason: /__metadata__ value for "n" is not a string/ },
    { title: 'a shape that overflows', bytes: () => rawSafetensors({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, f32(1)), reason: /overflows/, tensor: 'a' },
    { title: 'missing data_offsets', bytes: () => rawSafetensors({ a: { dtype: 'F32', shape: [1] } }, f32(1)), reason: /data_offsets undefined is not a pair/, tensor: 'a' },
    { title: 'an empty header', bytes: () => rawSafetensors('{}', undefined, { declaredLength: 0n }), reason: /^header is empty$/ },
    { title: 'an entry that is not an object', bytes: () => rawSafetensors({ w: 1 }), reason: /^entry is not an object$/, tensor: 'w' },
    { title: 'a missing dtype', bytes: () => rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, f32(1)), reason: /^missing dtype$/, tensor: 'w' },
    { title: 'a dtype that is not a string', bytes: () => rawSafetensors({ w: { dtype: 7, shape: [1], data_offsets: [0, 4] } }, f32(1)), reason: /^missing dtype$/, tensor: 'w' },
    { title: 'a shape that is not a list', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: 4, data_offsets: [0, 16] } }, f32(4)), reason: /^shape 4 is not a list of non-negative integers$/, tensor: 'w' },
    { title: 'a fractional dimension', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32(1)), reason: /not a list of non-negative integers/, tensor: 'w' },
    { title: 'negative data_offsets', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, f32(1)), reason: /^data_offsets \[-4,0\] is not a pair of non-negative integers$/, tensor: 'w' },
    { title: 'three data_offsets', bytes: () => rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, f32(2)), reason: /is not a pair/, tensor: 'w' },
    { title: '__metadata__ that is not an object', bytes: () => rawSafetensors({ __metadata__: 'notes' }), reason: /^__metadata__ is not an object of strings$/ },
    { title: 'a duplicate key inside __metadata__', bytes: () => rawSafetensors('{"__metadata__":{"k":"a","k":"b"}}'), reason: /^header has the key "k" twice in \/__metadata__$/ },
    { title: 'a duplicate key inside a tensor entry', bytes: () => rawSafetensors('{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', f32(1)), reason: /^header has the key "dtype" twice in \/w$/ },
  ];
  it.each(cases)('rejects $title', ({ bytes, reason, tensor }) => {
    const file = writeBytes(join(tempDir(), 'bad.safetensors'), bytes());
    expectCheckpointError(() => readSafetensorsHeader(file), file, reason, tensor);
  });

  it('cannot open a path that is not there (a dangling link), naming it and why', () => {
    const file = join(tempDir(), 'dangling.safetensors');
    symlinkSync(join(tempDir(), 'gone'), file);
    expectCheckpointError(() => readSafetensorsHeader(file), file, /^cannot open \(ENOENT\)$/);
  });

  it('names the file and what was being read when it ends early (a file cut short while it is read)', () => {
    const file = writeBytes(join(tempDir(), 'short.safetensors'), new Uint8Array(10));
    const fd = openSync(file, 'r');
    try {
      expectCheckpointError(() => readFully(fd, new Uint8Array(16), 0, file, 'the header'), file, /^unexpected end of file while reading the header$/);
    } finally {
      closeSync(fd);
    }
  });

  it('rejects a file that does not exist, naming it', () => {
    const file = join(tempDir(), 'missing.safetensors');
    expect(() => openCheckpoint(file)).toThrow(`${file}: does not exist`);
  });
});
