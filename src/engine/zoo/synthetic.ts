/**
 * Synthetic homologous checkpoints: a base and fine-tunes that differ from it by small seeded
 * deltas. Used by the demo, the tests and the benchmarks, where what matters is the file layout
 * and the arithmetic, not what the weights have learnt.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeFromFloat32, FloatDtype } from '../checkpoint/dtype';
import { CheckpointWriter, TensorSpec } from '../checkpoint/writer';
import { Random } from '../kernels/random';

export interface SyntheticFamilyOptions {
  /** Tensor names and shapes, in file order. */
  tensors: ReadonlyArray<{ name: string; shape: readonly number[] }>;
  fineTunes: number;
  seed: number;
  dtype?: FloatDtype;
  /** Standard deviation of the fine-tunes' deltas relative to the base's scale. */
  deltaScale?: number;
  maxShardBytes?: number;
}

export interface SyntheticFamily {
  base: string;
  fineTunes: string[];
}

/** Approximately normal values from the sum of uniform draws (Irwin–Hall, 4 terms). */
export function fillNormal(values: Float32Array, random: Random, scale: number): void {
  for (let i = 0; i < values.length; i++) {
    const u = random.nextFloat() + random.nextFloat() + random.nextFloat() + random.nextFloat() - 2;
    values[i] = u * Math.sqrt(3) * scale;
  }
}

function writeModel(directory: string, specs: TensorSpec[], produce: (spec: TensorSpec) => Float32Array, dtype: FloatDtype, maxShardBytes?: number): void {
  mkdirSync(directory, { recursive: true });
  const writer = new CheckpointWriter(directory, specs, { maxShardBytes, metadata: { format: 'pt' } });
  for (const spec of specs) writer.write(spec.name, encodeFromFloat32(produce(spec), dtype));
  writer.finish();
  writeFileSync(join(directory, 'config.json'), JSON.stringify({ model_type: 'synthetic', architectures: ['SyntheticModel'] }, null, 2) + '\n');
}

/** Writes `root/base` and `root/finetune-1..N`, one tensor in memory at a time. */
export function writeSyntheticFamily(root: string, options: SyntheticFamilyOptions): SyntheticFamily {
  const dtype = options.dtype ?? 'F32';
  const deltaScale = options.deltaScale ?? 0.1;
  const specs: TensorSpec[] = options.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype }));
  const baseValues = (spec: TensorSpec): Float32Array => {
    const values = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    fillNormal(values, new Random(options.seed, `base\u0000${spec.name}`), 0.02);
    return values;
  };
  const base = join(root, 'base');
  writeModel(base, specs, baseValues, dtype, options.maxShardBytes);
  const fineTunes: string[] = [];
  for (let f = 1; f <= options.fineTunes; f++) {
    const directory = join(root, `finetune-${f}`);
    writeModel(
      directory,
      specs,
      (spec) => {
        const values = baseValues(spec);
        const delta = new Float32Array(values.length);
        fillNormal(delta, new Random(options.seed, `finetune-${f}\u0000${spec.name}`), 0.02 * deltaScale);
        for (let i = 0; i < values.length; i++) values[i] += delta[i];
        return values;
      },
      dtype,
      options.maxShardBytes,
    );
    fineTunes.push(directory);
  }
  return { base, fineTunes };
}
