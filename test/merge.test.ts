/** End-to-end merges over real checkpoint files on disk, through the engine's public functions. */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openCheckpoint, TensorReader } from '../src/engine/checkpoint/checkpoint';
import { decodeToFloat32, encodeFromFloat32, float32Bits, float32BitsToBf16, float32BitsToF16, FloatDtype } from '../src/engine/checkpoint/dtype';
import { HalfType, roundToHalf } from './helpers/rounding';
import { writeSafetensorsFile } from '../src/engine/checkpoint/writer';
import { sha256File } from '../src/engine/checkpoint/files';
import { AbortError, CheckpointError, MergeInputError } from '../src/engine/errors';
import { parseMergeConfig, readMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { ProgressEvent } from '../src/engine/progress';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { removeTempDirs, tempDir, writeTinyModel } from './helpers/files';

afterAll(removeTempDirs);

const float32BitsToHalf = (type: HalfType, value: number) => (type === 'BF16' ? float32BitsToBf16 : float32BitsToF16)(float32Bits(value));

function readTensor(path: string, name: string): Float32Array {
  const checkpoint = openCheckpoint(path);
  const location = checkpoint.tensors.get(name)!;
  const reader = new TensorReader();
  try {
    return decodeToFloat32(reader.read(location), location.dtype as FloatDtype);
  } finally {
    reader.close();
  }
}

function writeConfig(dir: string, text: string): string {
  const path = join(dir, 'merge.yml');
  writeFileSync(path, text);
  return path;
}

/** Every file in the merge output's parent, to prove nothing half-written is left behind. */
function leftovers(outDir: string): string[] {
  return readdirSync(dirname(outDir)).filter((f) => f.startsWith('.') || f === 'out');
}

const SPEC = [
  { name: 'embed.weight', shape: [64, 16] },
  { name: 'layers.0.w', shape: [32, 16] },
  { name: 'layers.0.b', shape: [32] },
  { name: 'layers.1.w', shape: [16, 32] },
  { name: 'head.weight', shape: [4, 16] },
];

describe('merging checkpoints on disk', () => {
  let root: string;
  beforeAll(() => {
    root = tempDir();
    writeSyntheticFamily(join(root, 'models'), { tensors: SPEC, fineTunes: 3, seed: 3 });
  });

  const tiesConfig = (extra = '') => `merge_method: ties
base_model: models/base
models:
  - model: models/finetune-1
    parameters: { weight: 1.0, density: 0.5 }
  - model: models/finetune-2
    parameters: { weight: 0.6, density: 0.3 }
  - model: models/finetune-3
parameters: { weight: 0.8, density: 0.7 }
${extra}`;

  it('writes model.safetensors, the config copy, config.json and a model card; sha256 matches the file', async () => {
    const config = writeConfig(root, tiesConfig());
    const out = join(root, 'ties-out');
    const events: ProgressEvent[] = [];
    const result = await runMerge(planMerge(readMergeConfig(config)), out, { threads: 0, onProgress: (e) => events.push(e) });
    expect(readdirSync(out).sort()).toEqual(['README.md', 'config.json', 'mergekit_config.yml', 'model.safetensors']);
    expect(result.sha256).toBe(sha256File(join(out, 'model.safetensors')));
    expect(result.tensors).toBe(SPEC.length);
    expect(readFileSync(join(out, 'mergekit_config.yml'), 'utf8')).toBe(tiesConfig());
    const card = readFileSync(join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/^---\nbase_model:\n {2}- models\/base\n {2}- models\/finetune-1\n {2}- models\/finetune-2\n {2}- models\/finetune-3\nbase_model_relation: merge\n/);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).model_type).toBe('synthetic');
    expect(events.map((e) => e.done)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(events.every((e) => e.total === SPEC.length && e.phase === 'merge')).toBe(true);
    const merged = openCheckpoint(out);
    expect(merged.names).toEqual(SPEC.map((s) => s.name));
    expect(merged.metadata).toEqual({ format: 'pt', merge_method: 'ties' });
  });

  it('computes each tensor as the method does on the same arrays', async () => {
    const out = join(root, 'ta-out');
    const config = writeConfig(root, 'merge_method: task_arithmetic\nbase_model: models/base\nmodels:\n  - model: models/finetune-1\n    parameters: {weight: 0.5}\n  - model: models/finetune-2\n    parameters: {weight: 0.25}\nparameters: {lambda: 2}\n');
    await runMerge(planMerge(readMergeConfig(config)), out, { threads: 0 });
    for (const { name } of SPEC) {
      const base = readTensor(join(root, 'models/base'), name);
      const a = readTensor(join(root, 'models/finetune-1'), name);
      const b = readTensor(join(root, 'models/finetune-2'), name);
      const merged = readTensor(out, name);
      let worst = 0;
      for (let i = 0; i < base.length; i++) {
        const expected = Math.fround(base[i] + 2 * (0.5 * (a[i] - base[i]) + 0.25 * (b[i] - base[i])));
        worst = Math.max(worst, Math.abs(merged[i] - expected) / Math.max(Math.abs(expected), 1e-6));
      }
      expect(worst).toBeLessThan(1e-6);
    }
  });

  it('gives identical bytes inline and on worker threads, for TIES and for seeded DARE', async () => {
    for (const method of ['ties', 'dare_ties']) {
      const config = writeConfig(root, tiesConfig(`seed: 77\n`).replace('merge_method: ties', `merge_method: ${method}`));
      const inline = await runMerge(planMerge(readMergeConfig(config)), join(root, `${method}-inline`), { threads: 0 });
      const threaded = await runMerge(planMerge(readMergeConfig(config)), join(root, `${method}-threads`), { threads: 2 });
      expect(threaded.sha256).toBe(inline.sha256);
    }
  });

  it('reproduces DARE from its seed, records the seed, and differs for another seed', async () => {
    const dare = (seedLine: string) => `merge_method: dare_linear\nbase_model: models/base\nmodels:\n  - model: models/finetune-1\n  - model: models/finetune-2\nparameters: {weight: 0.5, density: 0.4}\n${seedLine}`;
    const first = await runMerge(planMerge(readMergeConfig(writeConfig(root, dare('seed: 5\n')))), join(root, 'dare-a'), { threads: 2 });
    const again = await runMerge(planMerge(readMergeConfig(writeConfig(root, dare('seed: 5\n')))), join(root, 'dare-b'), { threads: 1 });
    const other = await runMerge(planMerge(readMergeConfig(writeConfig(root, dare('seed: 6\n')))), join(root, 'dare-c'), { threads: 2 });
    expect(again.sha256).toBe(first.sha256);
    expect(other.sha256).not.toBe(first.sha256);
    expect(openCheckpoint(join(root, 'dare-a')).metadata?.merge_seed).toBe('5');
    // Without a seed the default is used and written into the config copy.
    const unseeded = await runMerge(planMerge(readMergeConfig(writeConfig(root, dare('')))), join(root, 'dare-d'), { threads: 0 });
    expect(unseeded.seed).toBe(0);
    expect(readFileSync(join(root, 'dare-d', 'mergekit_config.yml'), 'utf8')).toMatch(/\nseed: 0\n$/);
  });

  it('shards the output at the configured size with an index, and reads sharded input back', async () => {
    const config = writeConfig(root, tiesConfig('dtype: float16\n'));
    const out = join(root, 'sharded-out');
    const result = await runMerge(planMerge(readMergeConfig(config)), out, { threads: 2, maxShardBytes: 2048 });
    const shards = readdirSync(out).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).sort()).toEqual(SPEC.map((s) => s.name).sort());
    expect(result.files.map((f) => f.name)).toEqual([...shards, 'model.safetensors.index.json']);
    for (const f of result.files) expect(f.sha256).toBe(sha256File(join(out, f.name)));
    const reopened = openCheckpoint(out);
    expect(reopened.shards).toHaveLength(shards.length);
    expect([...reopened.tensors.values()].every((t) => t.dtype === 'F16')).toBe(true);
    // The same merge unsharded has the same values.
    const single = await runMerge(planMerge(readMergeConfig(config)), join(root, 'single-f16'), { threads: 0 });
    expect(single.files).toHaveLength(1);
    for (const { name } of SPEC) expect(readTensor(out, name)).toEqual(readTensor(join(root, 'single-f16'), name));
    // A sharded checkpoint is a valid merge input, by directory or by index path.
    const chained = writeConfig(root, `merge_method: linear\nmodels:\n  - model: sharded-out/model.safetensors.index.json\n    parameters: {weight: 1}\n  - model: single-f16/model.safetensors\n    parameters: {weight: 1}\n`);
    await runMerge(planMerge(readMergeConfig(chained)), join(root, 'chained'), { threads: 0 });
    for (const { name } of SPEC) expect(readTensor(join(root, 'chained'), name)).toEqual(readTensor(out, name));
  });

  it('refuses a non-empty output directory unless overwrite is given, then replaces it', async () => {
    const config = writeConfig(root, tiesConfig());
    const out = join(root, 'existing');
    await runMerge(planMerge(readMergeConfig(config)), out, { threads: 0 });
    await expect(runMerge(planMerge(readMergeConfig(config)), out, { threads: 0 })).rejects.toThrow(/exists and is not empty \(pass --overwrite/);
    writeFileSync(join(out, 'stale.txt'), 'old');
    await runMerge(planMerge(readMergeConfig(config)), out, { threads: 0, overwrite: true });
    expect(existsSync(join(out, 'stale.txt'))).toBe(false);
    expect(readdirSync(root).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('stops on abort and leaves nothing behind', async () => {
    const config = writeConfig(root, tiesConfig());
    const out = join(root, 'aborted', 'out');
    const controller = new AbortController();
    const promise = runMerge(planMerge(readMergeConfig(config)), out, {
      threads: 0,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.done === 2) controller.abort();
      },
    });
    await expect(promise).rejects.toBeInstanceOf(AbortError);
    expect(readdirSync(join(root, 'aborted'))).toEqual([]);
  });
});

describe('merge input errors: precise, and nothing written', () => {
  const tensors = { 'a.weight': { shape: [2, 2], values: [1, 2, 3, 4] }, 'a.bias': { shape: [2], values: [0, 1] } };

  async function expectRejected(models: Record<string, Parameters<typeof writeTinyModel>[1]>, message: RegExp, errorType: unknown, options: { nonFinite?: 'error' | 'warn'; configs?: Record<string, Record<string, unknown>> } = {}) {
    const dir = tempDir();
    for (const [name, t] of Object.entries(models)) writeTinyModel(join(dir, name), t, options.configs?.[name]);
    const config = parseMergeConfig('merge_method: ties\nbase_model: base\nmodels:\n  - model: ft\nparameters: {weight: 1, density: 0.5}\n', 'merge.yml', dir);
    const out = join(dir, 'out');
    const attempt = async () => runMerge(planMerge(config, { nonFinite: options.nonFinite }), out, { threads: 0 });
    await expect(attempt()).rejects.toThrow(message);
    await expect(attempt()).rejects.toBeInstanceOf(errorType);
    expect(leftovers(out)).toEqual([]);
  }

  it('names a tensor missing from a fine-tune', async () => {
    await expectRejected({ base: tensors, ft: { 'a.weight': tensors['a.weight'] } }, /ft lacks tensor\(s\) that .*base has: "a.bias"/, MergeInputError);
  });

  it('names a tensor only the fine-tune has', async () => {
    await expectRejected({ base: tensors, ft: { ...tensors, extra: { shape: [1], values: [1] } } }, /ft has tensor\(s\) that .*base lacks: "extra"/, MergeInputError);
  });

  it('names the tensor whose shape differs, with both shapes', async () => {
    await expectRejected({ base: tensors, ft: { ...tensors, 'a.weight': { shape: [4, 1], values: [1, 2, 3, 4] } } }, /tensor "a.weight" has shape \[4,1\] in .*ft but \[2,2\] in .*base/, MergeInputError);
  });

  it('names a differing architecture in config.json', async () => {
    await expectRejected({ base: tensors, ft: tensors }, /config.json model_type is "bert" in .*ft but "llama" in .*base/, MergeInputError, {
      configs: { base: { model_type: 'llama' }, ft: { model_type: 'bert' } },
    });
  });

  it('rejects NaN or Inf in an input, naming file and tensor, and writes nothing', async () => {
    const bad = { ...tensors, 'a.bias': { shape: [2], values: [0, Number.NaN] } };
    await expectRejected({ base: tensors, ft: bad }, /ft\/model.safetensors: tensor "a.bias": 1 non-finite value\(s\) \(NaN or Inf\), first at flat index 1/, CheckpointError);
    const inf = { ...tensors, 'a.weight': { shape: [2, 2], values: [1, Infinity, -Infinity, 4] } };
    await expectRejected({ base: inf, ft: tensors }, /base\/model.safetensors: tensor "a.weight": 2 non-finite/, CheckpointError);
  });

  it('merges with a warning when the non-finite policy is warn', async () => {
    const dir = tempDir();
    writeTinyModel(join(dir, 'base'), tensors);
    writeTinyModel(join(dir, 'ft'), { ...tensors, 'a.bias': { shape: [2], values: [0, Number.NaN] } });
    const config = parseMergeConfig('merge_method: ties\nbase_model: base\nmodels:\n  - model: ft\nparameters: {weight: 1}\n', 'merge.yml', dir);
    const result = await runMerge(planMerge(config, { nonFinite: 'warn' }), join(dir, 'out'), { threads: 0 });
    expect(result.warnings).toEqual([{ label: join(dir, 'ft'), tensor: 'a.bias', count: 1 }]);
  });

  it('fails a merge whose output overflows to NaN/Inf from finite inputs, naming the tensor; warn writes it and says so', async () => {
    const dir = tempDir();
    writeTinyModel(join(dir, 'base'), tensors);
    writeTinyModel(join(dir, 'ft'), { ...tensors, 'a.weight': { shape: [2, 2], values: [1, 2, 3, 5] } });
    const config = parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ft\n    parameters: {weight: 1.0e+308}\n', 'merge.yml', dir);
    const out = join(dir, 'out');
    await expect(runMerge(planMerge(config), out, { threads: 0 })).rejects.toThrow(/tensor "a\.weight": the merged values have 1 non-finite value\(s\) \(NaN or Inf\), first at flat index 3: the weights or parameters overflow float32/);
    expect(leftovers(out)).toEqual([]);
    const result = await runMerge(planMerge(config, { nonFinite: 'warn' }), out, { threads: 0 });
    expect(result.warnings).toEqual([{ label: 'merged output', tensor: 'a.weight', count: 1 }]);
  });

  it('rejects a truncated fine-tune before writing anything', async () => {
    const dir = tempDir();
    writeTinyModel(join(dir, 'base'), tensors);
    writeTinyModel(join(dir, 'ft'), tensors);
    const file = join(dir, 'ft', 'model.safetensors');
    writeFileSync(file, readFileSync(file).subarray(0, -3));
    const config = parseMergeConfig('merge_method: ties\nbase_model: base\nmodels:\n  - model: ft\nparameters: {weight: 1}\n', 'merge.yml', dir);
    expect(() => planMerge(config)).toThrow(/ft\/model.safetensors: tensor "a.bias": data_offsets \[16, 24\] run past the end of the file \(21 data bytes\)/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('carries non-float tensors over from the base and converts mixed float dtypes', async () => {
    const dir = tempDir();
    writeTinyModel(join(dir, 'base'), { w: { shape: [3], values: [1, 2, 3], dtype: 'BF16' } });
    writeTinyModel(join(dir, 'ft'), { w: { shape: [3], values: [2, 2, 5] } });
    for (const [name, ids] of [['base', [1, 2, 3]], ['ft', [7, 8, 9]]] as const) {
      writeSafetensorsFile(join(dir, name, 'model.safetensors'), [
        { name: 'w', dtype: name === 'base' ? 'BF16' : 'F32', shape: [3], data: encodeFromFloat32(Float32Array.from(name === 'base' ? [1, 2, 3] : [2, 2, 5]), name === 'base' ? 'BF16' : 'F32') },
        { name: 'position_ids', dtype: 'I64', shape: [3], data: new Uint8Array(new BigInt64Array(ids.map(BigInt)).buffer) },
      ]);
    }
    const config = parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ft\n    parameters: {weight: 0.5}\n', 'merge.yml', dir);
    await runMerge(planMerge(config), join(dir, 'out'), { threads: 0 });
    const merged = openCheckpoint(join(dir, 'out'));
    expect(merged.tensors.get('w')!.dtype).toBe('BF16');
    expect(Array.from(readTensor(join(dir, 'out'), 'w'))).toEqual([1.5, 2, 4]);
    const ids = new TensorReader().read(merged.tensors.get('position_ids')!);
    expect(Array.from(new BigInt64Array(ids.buffer))).toEqual([1n, 2n, 3n]);
  });
});

describe('half-type outputs: one correct rounding of the float64 result', () => {
  // Pairs whose average lies a float32 half-ulp above a halfway point of the half type: rounded to
  // the nearest float32 it lands on the halfway point, and ties-to-even would then go down for
  // every other pair. Then random values.
  const pairs = (ulp: number) => {
    const a: number[] = [];
    const b: number[] = [];
    for (let j = 0; j < 100; j++) {
      const low = 1 + j * ulp + ulp / 2;
      a.push(low);
      b.push(low + 2 ** -23);
    }
    let state = 99;
    for (let i = 0; i < 924; i++) {
      state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      a.push(Math.fround((state / 4294967296 - 0.5) * 8));
      b.push(Math.fround(((state >>> 7) / 33554432 - 0.5) * 8));
    }
    return { a, b };
  };

  it.each([
    ['bfloat16', 'BF16', 2 ** -7],
    ['float16', 'F16', 2 ** -10],
  ] as const)('%s: linear and task arithmetic merges write the correctly rounded average, inline and on threads', async (dtype, type, ulp) => {
    const root = tempDir();
    const { a, b } = pairs(ulp);
    writeTinyModel(join(root, 'zero'), { w: { shape: [a.length], values: new Array(a.length).fill(0) } });
    writeTinyModel(join(root, 'a'), { w: { shape: [a.length], values: a } });
    writeTinyModel(join(root, 'b'), { w: { shape: [a.length], values: b } });
    const expected = a.map((v, i) => roundToHalf(0.5 * v + 0.5 * b[i], type));
    // Rounding twice (to float32, then to the half type) gets some of them wrong: the test can fail.
    const twice = a.map((v, i) => float32BitsToHalf(type, Math.fround(0.5 * v + 0.5 * b[i])));
    expect(twice.filter((bits, i) => bits !== expected[i]).length).toBeGreaterThan(10);
    const configs = {
      linear: `merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters: {weight: 1}\ndtype: ${dtype}\n`,
      task_arithmetic: `merge_method: task_arithmetic\nbase_model: zero\nmodels:\n  - model: a\n    parameters: {weight: 0.5}\n  - model: b\n    parameters: {weight: 0.5}\ndtype: ${dtype}\n`,
    };
    for (const [method, text] of Object.entries(configs)) {
      for (const threads of [0, 2]) {
        const out = join(root, `${method}-${threads}`);
        await runMerge(planMerge(readMergeConfig(writeConfig(root, text))), out, { threads });
        const location = openCheckpoint(out).tensors.get('w')!;
        expect(location.dtype).toBe(type);
        const reader = new TensorReader();
        const written = Array.from(new Uint16Array(reader.read(location).slice().buffer));
        reader.close();
        const wrong = written.map((bits, i) => (bits === expected[i] ? '' : `${i}: 0x${bits.toString(16)} vs 0x${expected[i].toString(16)}`)).filter(Boolean);
        expect({ method, threads, wrong: wrong.slice(0, 5) }).toEqual({ method, threads, wrong: [] });
      }
    }
  });

  it('fails a float16 merge whose values overflow float16 (written as Inf otherwise), naming the tensor', async () => {
    const root = tempDir();
    writeTinyModel(join(root, 'a'), { w: { shape: [4], values: [1, 70000, -2, 65519] } });
    const config = writeConfig(root, 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\ndtype: float16\n');
    await expect(runMerge(planMerge(readMergeConfig(config)), join(root, 'out'), { threads: 0 })).rejects.toThrow(
      /tensor "w": the merged values have 1 value\(s\) beyond float16's range \(they would be written as Inf\), first at flat index 1: the weights or parameters overflow float16/,
    );
    expect(existsSync(join(root, 'out'))).toBe(false);
    // As bfloat16 the same values fit.
    const fits = writeConfig(root, 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\ndtype: bfloat16\n');
    await runMerge(planMerge(readMergeConfig(fits)), join(root, 'bf16'), { threads: 0 });
  });
});
