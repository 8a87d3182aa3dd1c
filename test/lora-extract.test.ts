/**
 * `apl-merge extract-lora` as a real process: the adapter it writes, merged back onto the base,
 * reproduces the fine-tune's matrices to the best error of its rank (Eckart–Young: the first left-out
 * singular value, known here by construction); seeded, so the same seed gives the same bytes; and
 * what cannot be extracted is refused.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openCheckpoint } from '../src/engine/checkpoint/checkpoint';
import { sha256File } from '../src/engine/checkpoint/files';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { removeTempDirs, tempDir, writeTinyModel, readTensorValues } from './helpers/files';

afterAll(removeTempDirs);

const BIN = resolve(__dirname, '../bin/apl-merge.js');
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

/** k orthonormal vectors of length n (Gram–Schmidt on fixed, independent starts). */
function orthonormal(n: number, k: number): number[][] {
  const out: number[][] = [];
  for (let j = 0; j < k; j++) {
    const v = Array.from({ length: n }, (_, i) => Math.sin(1 + i * (j + 1.7)) + (i === j ? 2 : 0));
    for (const u of out) {
      const d = u.reduce((s, x, i) => s + x * v[i], 0);
      u.forEach((x, i) => (v[i] -= d * x));
    }
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    out.push(v.map((x) => x / norm));
  }
  return out;
}

const SIGMA = [3, 1, 0.2];
const [ROWS, COLUMNS] = [6, 5];
const U = orthonormal(ROWS, 3);
const V = orthonormal(COLUMNS, 3);
const DELTA = Array.from({ length: ROWS * COLUMNS }, (_, idx) => SIGMA.reduce((s, sigma, j) => s + sigma * U[j][Math.floor(idx / COLUMNS)] * V[j][idx % COLUMNS], 0));
const BASE_W = Array.from({ length: ROWS * COLUMNS }, (_, i) => Math.cos(i) / 2);

const read = readTensorValues;

describe('extract-lora', () => {
  let root: string;
  beforeAll(() => {
    root = tempDir();
    const common = { 'model.layers.0.mlp.gate_proj.weight': { shape: [4, 4], values: new Array(16).fill(0.5) } };
    writeTinyModel(join(root, 'base'), { ...common, 'model.layers.0.mlp.up_proj.weight': { shape: [ROWS, COLUMNS], values: BASE_W }, 'model.norm.weight': { shape: [4], values: [1, 1, 1, 1] } }, { model_type: 'llama' });
    writeTinyModel(join(root, 'ft'), { ...common, 'model.layers.0.mlp.up_proj.weight': { shape: [ROWS, COLUMNS], values: BASE_W.map((v, i) => v + DELTA[i]) }, 'model.norm.weight': { shape: [4], values: [1.5, 1, 1, 1] } }, { model_type: 'llama' });
  });

  it.each([
    [2, SIGMA[2]],
    [3, 0],
  ])('at rank %i, merged back onto the base, misses the fine-tune by the first left-out singular value (%f)', async (rank, expected) => {
    const adapter = join(root, `adapter-${rank}`);
    const run = cli(['extract-lora', join(root, 'base'), join(root, 'ft'), '--rank', String(rank), '--out', adapter, '--seed', '5']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`wrote ${adapter}: 1 module(s) at rank ${rank} (seed 5)`);
    // The changed norm is not a matrix: reported, not written; the unchanged gate_proj is not in it.
    expect(run.stdout).toContain('not matrices, so not in the adapter (1): model.norm.weight');
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: rank, lora_alpha: rank, target_modules: ['up_proj'], apl_merge_extract_seed: 5 });
    expect(openCheckpoint(join(adapter, 'adapter_model.safetensors')).names.sort()).toEqual(['base_model.model.model.layers.0.mlp.up_proj.lora_A.weight', 'base_model.model.model.layers.0.mlp.up_proj.lora_B.weight']);
    const merged = join(root, `merged-${rank}`);
    await runMerge(planMerge(parseMergeConfig(`merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: adapter-${rank}\n    parameters: {weight: 1}\n`, 'merge.yml', root)), merged, { threads: 0 });
    const got = read(merged, 'model.layers.0.mlp.up_proj.weight');
    const want = read(join(root, 'ft'), 'model.layers.0.mlp.up_proj.weight');
    const miss = Math.sqrt(got.reduce((s, v, i) => s + (v - want[i]) ** 2, 0));
    expect(Math.abs(miss - expected)).toBeLessThan(1e-5);
  });

  it('gives the same bytes for the same seed', () => {
    for (const name of ['same-a', 'same-b']) expect(cli(['extract-lora', join(root, 'base'), join(root, 'ft'), '--rank', '2', '--out', join(root, name)]).status).toBe(0);
    expect(sha256File(join(root, 'same-a', 'adapter_model.safetensors'))).toBe(sha256File(join(root, 'same-b', 'adapter_model.safetensors')));
  });

  it('refuses a rank below 1, a fine-tune of another shape, or one that changes no matrix, and writes nothing', () => {
    const zero = cli(['extract-lora', join(root, 'base'), join(root, 'ft'), '--rank', '0', '--out', join(root, 'none-0')]);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toContain('--rank must be a positive integer, got 0');
    writeTinyModel(join(root, 'other'), { 'model.layers.0.mlp.up_proj.weight': { shape: [2, 2], values: [1, 2, 3, 4] } });
    const misfit = cli(['extract-lora', join(root, 'base'), join(root, 'other'), '--rank', '1', '--out', join(root, 'none-1')]);
    expect(misfit.stderr).toMatch(/lacks tensor|shape/);
    const same = cli(['extract-lora', join(root, 'base'), join(root, 'base'), '--rank', '1', '--out', join(root, 'none-2')]);
    expect(same.stderr).toContain('changes no matrix');
    for (const name of ['none-0', 'none-1', 'none-2']) expect(existsSync(join(root, name))).toBe(false);
  });
});
