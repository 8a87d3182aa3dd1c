/**
 * LoRA/PEFT adapters as fine-tunes, from files: an adapter directory merged against its base, and
 * mergekit's MODEL+ADAPTER, give base + scale·B·A (the transpose for embeddings), computed here by
 * hand; rsLoRA's scale; modules_to_save copies; adapters inside slices; inline and threaded merges
 * agree; and every adapter that does not fit is an error naming the file, field or tensor, with
 * nothing written.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeFromFloat32 } from '../src/engine/checkpoint/dtype';
import { writeSafetensorsFile } from '../src/engine/checkpoint/writer';
import { CheckpointError, MergeInputError } from '../src/engine/errors';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { removeTempDirs, tempDir, writeTinyModel, readTensorValues } from './helpers/files';

afterAll(removeTempDirs);

const Q = 'model.layers.0.self_attn.q_proj.weight';
const EMBED = 'model.embed_tokens.weight';
const base = {
  [EMBED]: { shape: [6, 4], values: Array.from({ length: 24 }, (_, i) => i / 10) },
  [Q]: { shape: [4, 4], values: Array.from({ length: 16 }, (_, i) => (i % 5) - 2) },
  'model.norm.weight': { shape: [4], values: [1, 1, 1, 1] },
};
const A = [0.5, -1, 2, 0, 1, 1, -0.5, 3]; // [2, 4]
const B = [1, 0, 0, 2, -1, 1, 0.5, 0.25]; // [4, 2]
const EA = Array.from({ length: 12 }, (_, i) => (i - 6) / 4); // [2, 6]
const EB = [1, -1, 0, 2, 0.5, 0.5, -2, 1]; // [4, 2]

/** B·A by hand: [rows of B, columns of A]. */
const product = (b: number[], a: number[], rows: number, rank: number, columns: number) =>
  Array.from({ length: rows * columns }, (_, idx) => {
    const [o, i] = [Math.floor(idx / columns), idx % columns];
    let sum = 0;
    for (let k = 0; k < rank; k++) sum += b[o * rank + k] * a[k * columns + i];
    return sum;
  });

function writeAdapter(dir: string, config: Record<string, unknown>, tensors: Record<string, { shape: number[]; values: number[] }>): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
  writeSafetensorsFile(join(dir, 'adapter_model.safetensors'), Object.entries(tensors).map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: encodeFromFloat32(Float32Array.from(t.values), 'F32') })));
  return dir;
}

const adapterTensors = {
  'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [2, 4], values: A },
  'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [4, 2], values: B },
  'base_model.model.model.embed_tokens.lora_embedding_A': { shape: [2, 6], values: EA },
  'base_model.model.model.embed_tokens.lora_embedding_B': { shape: [4, 2], values: EB },
};

const read = readTensorValues;

const close = (actual: number[], expected: number[]) => {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-6));
};

describe('LoRA adapters', () => {
  let root: string;
  beforeAll(() => {
    root = tempDir();
    writeTinyModel(join(root, 'base'), base, { model_type: 'llama' });
    writeAdapter(join(root, 'adapter'), { peft_type: 'LORA', r: 2, lora_alpha: 6, target_modules: ['q_proj', 'embed_tokens'] }, adapterTensors);
    writeAdapter(join(root, 'rs'), { peft_type: 'LORA', r: 2, lora_alpha: 6, use_rslora: true }, adapterTensors);
  });

  it.each([0, 2])('merges an adapter against its base as base + (α/r)·B·A, embeddings transposed (threads: %i)', async (threads) => {
    const out = join(root, `ta-${threads}`);
    const config = parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: adapter\n    parameters: {weight: 1}\n', 'merge.yml', root);
    await runMerge(planMerge(config), out, { threads });
    const scale = 6 / 2;
    const q = product(B, A, 4, 2, 4);
    close(read(out, Q), base[Q].values.map((v, i) => v + scale * q[i]));
    // Embedding: (B·A) is [4, 6]; its transpose [6, 4] is added.
    const e = product(EB, EA, 4, 2, 6);
    close(read(out, EMBED), base[EMBED].values.map((v, idx) => v + scale * e[(idx % 4) * 6 + Math.floor(idx / 4)]));
    // Tensors the adapter does not touch are the base's.
    close(read(out, 'model.norm.weight'), [1, 1, 1, 1]);
  });

  it('takes mergekit\'s MODEL+ADAPTER, and rsLoRA\'s scale α/√r', async () => {
    const out = join(root, 'plus');
    await runMerge(planMerge(parseMergeConfig('merge_method: linear\nmodels:\n  - model: base+rs\n    parameters: {weight: 1}\n', 'merge.yml', root)), out, { threads: 0 });
    const q = product(B, A, 4, 2, 4);
    close(read(out, Q), base[Q].values.map((v, i) => v + (6 / Math.sqrt(2)) * q[i]));
  });

  it('takes modules_to_save copies whole, in place of the base\'s tensor', async () => {
    writeAdapter(join(root, 'saves-norm'), { peft_type: 'LORA', r: 2, lora_alpha: 2, modules_to_save: ['norm'] }, {
      ...adapterTensors,
      'base_model.model.model.norm.weight': { shape: [4], values: [2, 3, 4, 5] },
    });
    const out = join(root, 'saved');
    await runMerge(planMerge(parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: saves-norm\n    parameters: {weight: 1}\n', 'merge.yml', root)), out, { threads: 2 });
    close(read(out, 'model.norm.weight'), [2, 3, 4, 5]);
    const q = product(B, A, 4, 2, 4);
    close(read(out, Q), base[Q].values.map((v, i) => v + q[i]));
  });

  it('merges adapters inside slices: MODEL+ADAPTER, and an adapter alone against base_model', async () => {
    const yaml = (model: string) => `merge_method: passthrough\nbase_model: base\nslices:\n  - sources: [{model: ${model}, layer_range: [0, 1]}]\n  - sources: [{model: base, layer_range: [0, 1]}]\n`;
    const q = product(B, A, 4, 2, 4);
    for (const model of ['base+adapter', 'adapter']) {
      const out = join(root, `sliced-${model.replace('+', '-')}`);
      await runMerge(planMerge(parseMergeConfig(yaml(model), 'merge.yml', root)), out, { threads: 0 });
      // Layer 0 from the adapted model, layer 1 the base's own; embeddings come from the first slice's source.
      close(read(out, Q), base[Q].values.map((v, i) => v + 3 * q[i]));
      close(read(out, 'model.layers.1.self_attn.q_proj.weight'), base[Q].values);
      const e = product(EB, EA, 4, 2, 6);
      close(read(out, EMBED), base[EMBED].values.map((v, idx) => v + 3 * e[(idx % 4) * 6 + Math.floor(idx / 4)]));
    }
  });

  it('refuses adapters that do not fit, naming file, field or tensor, and writes nothing', async () => {
    const plan = (yaml: string) => () => planMerge(parseMergeConfig(yaml, 'merge.yml', root));
    expect(plan('merge_method: linear\nmodels:\n  - model: adapter\n    parameters: {weight: 1}\n')).toThrow(new MergeInputError(`models[0]: ${join(root, 'adapter')} is a LoRA adapter; give base_model (the model it adapts), or write MODEL+ADAPTER`));
    const bad = (name: string, config: Record<string, unknown>, tensors: Record<string, { shape: number[]; values: number[] }> = adapterTensors) => {
      writeAdapter(join(root, name), config, tensors);
      return plan(`merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ${name}\n    parameters: {weight: 1}\n`);
    };
    const expectError = (fn: () => unknown, pattern: RegExp) => {
      expect(fn).toThrow(CheckpointError);
      expect(fn).toThrow(pattern);
    };
    expectError(bad('dora', { peft_type: 'LORA', r: 2, use_dora: true }), /dora\/adapter_config\.json: use_dora: DoRA adapters are not supported/);
    expectError(bad('ia3', { peft_type: 'IA3', r: 2 }), /peft_type: is "IA3"; only LORA adapters can be merged/);
    expectError(bad('rank', { peft_type: 'LORA', r: 3 }), /rank\/adapter_model\.safetensors: tensor "base_model.*lora_A.weight": A is \[2,4\] and B \[4,2\], which do not meet at the adapter's r = 3/);
    expectError(bad('zero', { peft_type: 'LORA', r: 0 }), /r: must be a positive integer, got 0/);
    const withoutB = Object.fromEntries(Object.entries(adapterTensors).filter(([name]) => !name.includes('q_proj.lora_B')));
    expectError(bad('half', { r: 2 }, withoutB), /has A but no B matrix for module "model.layers.0.self_attn.q_proj"/);
    expectError(bad('elsewhere', { r: 2 }, { 'base_model.model.model.layers.7.mlp.lora_A.weight': { shape: [2, 4], values: A }, 'base_model.model.model.layers.7.mlp.lora_B.weight': { shape: [4, 2], values: B } }), /adapts "model.layers.7.mlp.weight", which .*base does not have/);
    expectError(bad('misfit', { r: 2 }, { 'base_model.model.model.norm.lora_A.weight': { shape: [2, 4], values: A }, 'base_model.model.model.norm.lora_B.weight': { shape: [4, 2], values: B } }), /B·A is \[4,4\], but "model.norm.weight" of .*base is \[4\]/);
    expectError(bad('unlisted', { r: 2 }, { ...adapterTensors, 'base_model.model.model.norm.weight': { shape: [4], values: [1, 2, 3, 4] } }), /tensor "base_model.model.model.norm.weight": is neither a LoRA A or B matrix nor a tensor of a module listed in adapter_config.json's modules_to_save \(none\)/);
    expectError(bad('wrong-save', { r: 2, modules_to_save: ['norm'] }, { ...adapterTensors, 'base_model.model.model.norm.weight': { shape: [5], values: [1, 2, 3, 4, 5] } }), /is saved whole \(modules_to_save\) as \[5\], but "model.norm.weight" of .*base is \[4\]/);
    expectError(bad('bad-list', { r: 2, modules_to_save: 'norm' }), /modules_to_save: must be a list of module names, got "norm"/);
    mkdirSync(join(root, 'broken'), { recursive: true });
    writeFileSync(join(root, 'broken', 'adapter_config.json'), '{"r": ');
    expectError(plan('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: broken\n    parameters: {weight: 1}\n'), /broken\/adapter_config\.json: is not valid JSON/);
    const out = join(root, 'nothing');
    await expect((async () => runMerge(planMerge(parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: misfit\n    parameters: {weight: 1}\n', 'merge.yml', root)), out, { threads: 0 }))()).rejects.toThrow(/does not|is \[4\]/);
    expect(existsSync(out)).toBe(false);
  });
});
