/** The IDX format of MNIST-style datasets (optionally gzipped): a magic number, dimensions, bytes. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

export function readIdx(path: string): IdxArray {
  let bytes: Uint8Array = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4 || view.getUint16(0) !== 0) throw new Error(`${path}: not an IDX file (bad magic number)`);
  const type = bytes[2];
  if (type !== 0x08) throw new Error(`${path}: IDX element type 0x${type.toString(16)} is not unsigned bytes`);
  const dimensions = bytes[3];
  const shape: number[] = [];
  for (let i = 0; i < dimensions; i++) shape.push(view.getUint32(4 + 4 * i));
  const start = 4 + 4 * dimensions;
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== start + count) throw new Error(`${path}: IDX shape ${JSON.stringify(shape)} needs ${count} bytes of data, file has ${bytes.byteLength - start}`);
  return { shape, data: bytes.subarray(start) };
}
