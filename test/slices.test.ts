/**
 * Frankenmerges (`slices:` with `layer_range`), from files: layers stacked and interleaved from
 * several models and renumbered, the tensors outside the layers from the first slice, config.json's
 * layer count updated; a method applied inside slices; and each misfit refused naming the field,
 * with nothing written.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/engine/checkpoint/checkpoint';
import { ConfigError, MergeInputError } from '../src/engine/errors';
import { loadModel } from '../src/engine/families/model';
import { readMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { removeTempDirs, tempDir, TinyTensors, writeTinyModel, readTensorValues } from './helpers/files';
import { tinyFamily } from './helpers/tiny-models';

afterAll(removeTempDirs);

/** A Llama-named model of four layers; every value says which model (offset) and layer it is. */
function llama(dir: string, offset: number, layers = 4, qWidth = 4): string {
  const tensors: TinyTensors = {
    'model.embed_tokens.weight': { shape: [6, 4], values: Array.from({ length: 24 }, (_, i) => offset + 0.5 + i / 100) },
  };
  for (let l = 0; l < layers; l++) {
    tensors[`model.layers.${l}.self_attn.q_proj.weight`] = { shape: [4, qWidth], values: Array.from({ length: 4 * qWidth }, (_, i) => offset + l + i / 100) };
    tensors[`model.layers.${l}.input_layernorm.weight`] = { shape: [4], values: [offset + l, offset + l, offset + l, offset + l] };
  }
  tensors['model.norm.weight'] = { shape: [4], values: [offset + 0.25, 0, 0, 0] };
  tensors['lm_head.weight'] = { shape: [6, 4], values: Array.from({ length: 24 }, () => offset + 0.75) };
  return writeTinyModel(dir, tensors, { model_type: 'llama', architectures: ['LlamaForCausalLM'], num_hidden_layers: layers, hidden_size: 4 });
}

const read = readTensorValues;

function config(root: string, text: string): string {
  const path = join(root, `merge-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(path, text);
  return path;
}

describe('slices', () => {
  let root: string;
  beforeAll(() => {
    root = tempDir();
    llama(join(root, 'a'), 0);
    llama(join(root, 'b'), 100);
  });

  it('stacks and interleaves layers with passthrough, renumbered, and updates num_hidden_layers', async () => {
    const out = join(root, 'franken');
    const yaml = `merge_method: passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 2]
  - sources:
      - model: b
        layer_range: [1, 4]
  - sources:
      - model: a
        layer_range: [3, 4]
dtype: float32
`;
    await runMerge(planMerge(readMergeConfig(config(root, yaml))), out, { threads: 0 });
    const checkpoint = openCheckpoint(out);
    const layers = [...new Set(checkpoint.names.map((n) => /layers\.(\d+)\./.exec(n)?.[1]).filter(Boolean))];
    expect(layers).toEqual(['0', '1', '2', '3', '4', '5']);
    // Which model and source layer each output layer came from: the layer norm's value is offset + layer.
    const origin = layers.map((l) => read(out, `model.layers.${l}.input_layernorm.weight`)[0]);
    expect(origin).toEqual([0, 1, 101, 102, 103, 3]);
    expect(read(out, 'model.layers.2.self_attn.q_proj.weight')).toEqual(read(join(root, 'b'), 'model.layers.1.self_attn.q_proj.weight'));
    // Outside the layers: the first slice's model, embeddings first and the head last, as in the input.
    expect(read(out, 'model.embed_tokens.weight')).toEqual(read(join(root, 'a'), 'model.embed_tokens.weight'));
    expect(read(out, 'lm_head.weight')[0]).toBe(0.75);
    expect(checkpoint.names[0]).toBe('model.embed_tokens.weight');
    expect(checkpoint.names.at(-1)).toBe('lm_head.weight');
    const json = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(json).toMatchObject({ model_type: 'llama', num_hidden_layers: 6, hidden_size: 4 });
  });

  it('merges inside slices with the method (slerp of the same ranges equals the plain slerp)', async () => {
    const sliced = join(root, 'slerp-sliced');
    const plain = join(root, 'slerp-plain');
    await runMerge(planMerge(readMergeConfig(config(root, 'merge_method: slerp\nbase_model: a\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 4]\n      - model: b\n        layer_range: [0, 4]\nparameters: {t: 0.3}\n'))), sliced, { threads: 0 });
    await runMerge(planMerge(readMergeConfig(config(root, 'merge_method: slerp\nbase_model: a\nmodels: [{model: b}]\nparameters: {t: 0.3}\n'))), plain, { threads: 0 });
    for (const name of openCheckpoint(plain).names) expect(read(sliced, name)).toEqual(read(plain, name));
  });

  it("takes a slice's own parameters over the top-level ones (slerp t per slice)", async () => {
    const sliced = join(root, 'slerp-per-slice');
    const yaml = `merge_method: slerp
base_model: a
parameters: {t: 0.2}
slices:
  - sources: [{model: a, layer_range: [0, 2]}, {model: b, layer_range: [0, 2]}]
  - sources: [{model: a, layer_range: [2, 4]}, {model: b, layer_range: [2, 4]}]
    parameters: {t: 0.8}
`;
    await runMerge(planMerge(readMergeConfig(config(root, yaml))), sliced, { threads: 0 });
    for (const t of [0.2, 0.8]) {
      const plain = join(root, `slerp-t${t}`);
      await runMerge(planMerge(readMergeConfig(config(root, `merge_method: slerp\nbase_model: a\nmodels: [{model: b}]\nparameters: {t: ${t}}\n`))), plain, { threads: 0 });
      for (const layer of t === 0.2 ? [0, 1] : [2, 3]) expect(read(sliced, `model.layers.${layer}.self_attn.q_proj.weight`)).toEqual(read(plain, `model.layers.${layer}.self_attn.q_proj.weight`));
    }
  });

  it.each([
    ['a per-model parameter on a slice', 'merge_method: linear\nslices: [{sources: [{model: a, layer_range: [0, 1]}], parameters: {weight: 1}}]\n', 'slices[0].parameters.weight', /is a per-model parameter of linear; set it on the slice's sources/],
    ['models and slices together', 'merge_method: passthrough\nmodels: [{model: a}]\nslices: [{sources: [{model: a, layer_range: [0, 1]}]}]\n', 'slices', /cannot be given with models/],
    ['an empty layer range', 'merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [2, 2]}]}]\n', 'slices[0].sources[0].layer_range', /is empty/],
    ['a layer range that is not a pair', 'merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [1]}]}]\n', 'slices[0].sources[0].layer_range', /two non-negative integers/],
    ['sources of unequal length', 'merge_method: linear\nslices: [{sources: [{model: a, layer_range: [0, 2], parameters: {weight: 1}}, {model: b, layer_range: [0, 3], parameters: {weight: 1}}]}]\n', 'slices[0].sources[1].layer_range', /covers 3 layers, but sources\[0\] covers 2/],
    ['two sources for passthrough', 'merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [0, 2]}, {model: b, layer_range: [0, 2]}]}]\n', 'slices[0].sources', /passthrough takes exactly one model; got 2/],
    ['a slerp slice without the base', 'merge_method: slerp\nbase_model: a\nslices: [{sources: [{model: b, layer_range: [0, 2]}]}]\nparameters: {t: 0.5}\n', 'slices[0].sources', /needs the base_model among every slice's sources/],
    ['an unknown slice key', 'merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [0, 1]}], residual_scale: 2}]\n', 'slices[0].residual_scale', /unsupported key/],
  ])('refuses %s, naming the field', (_title, yaml, field, reason) => {
    let caught: unknown;
    try {
      readMergeConfig(config(root, yaml));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
    expect((caught as ConfigError).reason).toMatch(reason);
  });

  it('refuses a layer range past the model\'s layers, and a source lacking a tensor, before writing', async () => {
    const past = readMergeConfig(config(root, 'merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [2, 6]}]}]\n'));
    expect(() => planMerge(past)).toThrow(new MergeInputError(`slices[0].sources[0].layer_range: [2, 6] goes past the 4 layer(s) of ${join(root, 'a')}`));
    // Different ranges of models of different depths merge layer by layer.
    llama(join(root, 'short'), 200, 2);
    const deep = readMergeConfig(config(root, 'merge_method: linear\nslices: [{sources: [{model: a, layer_range: [2, 4], parameters: {weight: 1}}, {model: short, layer_range: [0, 2], parameters: {weight: 1}}]}]\n'));
    expect(planMerge(deep).jobs.find((j) => j.name === 'model.layers.1.input_layernorm.weight')!.models.map((m) => m.name)).toEqual(['model.layers.3.input_layernorm.weight', 'model.layers.1.input_layernorm.weight']);
    // A source lacking a tensor the first source has, and one whose layers have other shapes.
    writeTinyModel(join(root, 'bare'), { 'model.layers.0.self_attn.q_proj.weight': { shape: [4, 4], values: new Array(16).fill(1) }, 'model.layers.0.input_layernorm.weight': { shape: [4], values: [1, 1, 1, 1] } });
    const bare = readMergeConfig(config(root, 'merge_method: linear\nslices: [{sources: [{model: a, layer_range: [0, 1], parameters: {weight: 1}}, {model: bare, layer_range: [0, 1], parameters: {weight: 1}}]}]\n'));
    expect(() => planMerge(bare)).toThrow(`slices[0].sources[1]: ${join(root, 'bare')} has no tensor "model.embed_tokens.weight"`);
    llama(join(root, 'wide'), 300, 4, 8);
    const misfit = readMergeConfig(config(root, 'merge_method: linear\nslices: [{sources: [{model: a, layer_range: [0, 1], parameters: {weight: 1}}, {model: wide, layer_range: [2, 3], parameters: {weight: 1}}]}]\n'));
    expect(() => planMerge(misfit)).toThrow(`slices[0].sources[1]: tensor "model.layers.2.self_attn.q_proj.weight" has shape [4,8], but "model.layers.0.self_attn.q_proj.weight" of ${join(root, 'a')} has [4,4]`);
    const out = join(root, 'never');
    await expect((async () => runMerge(planMerge(readMergeConfig(config(root, 'merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [3, 5]}]}]\n'))), out, { threads: 0 }))()).rejects.toThrow(/goes past/);
    expect(existsSync(out)).toBe(false);
  });

  it('slices our MLP family when its layers chain, and says where they do not', async () => {
    const dir = join(root, 'mlp');
    const family = tinyFamily({ seed: 3, tasks: [{ name: 'alpha', classes: 3 }], hidden: [8, 8, 8], dir });
    void family;
    const out = join(root, 'mlp-franken');
    await runMerge(planMerge(readMergeConfig(config(root, 'merge_method: passthrough\nslices:\n  - sources: [{model: mlp/alpha, layer_range: [0, 2]}]\n  - sources: [{model: mlp/alpha, layer_range: [1, 3]}]\n'))), out, { threads: 0 });
    const json = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(json.hidden_sizes).toEqual([8, 8, 8, 8]);
    const model = loadModel(out);
    expect([...model.params.keys()].filter((n) => n.startsWith('trunk.'))).toHaveLength(8);
    expect(Array.from(model.params.get('trunk.layers.2.weight')!)).toEqual(read(join(dir, 'alpha'), 'trunk.layers.1.weight'));
    // Layer 0 twice: the second copy would take 16 inputs where the first gives 8.
    const broken = readMergeConfig(config(root, 'merge_method: passthrough\nslices:\n  - sources: [{model: mlp/alpha, layer_range: [0, 1]}]\n  - sources: [{model: mlp/alpha, layer_range: [0, 1]}]\n'));
    expect(() => planMerge(broken)).toThrow('slices[1]: the layers do not line up: output layer 1 takes 16 inputs, but layer 0 gives 8');
  });
});
