/**
 * LoRA adapters in the platform, against a real server, PostgreSQL and worker process: an adapter
 * directory registers as a FINETUNE of the model it adapts (hashed by its weights file), is
 * refused as anything else or against a model it does not fit, and merges through the API like
 * any fine-tune, giving base + scale·B·A.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from '../src/engine/checkpoint/files';
import { encodeFromFloat32 } from '../src/engine/checkpoint/dtype';
import { writeSafetensorsFile } from '../src/engine/checkpoint/writer';
import { waitFor } from './helpers/graphql';
import { readTensorValues, writeTinyModel } from './helpers/files';
import { startTestPlatform, TestPlatform } from './helpers/platform';

jest.setTimeout(90000);
let platform: TestPlatform;
const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id kind architecture checkpoint { sha256 tensorCount } } } }';
const Q = 'model.layers.0.self_attn.q_proj.weight';
const BASE_Q = Array.from({ length: 16 }, (_, i) => i / 8 - 1);
const A = [1, 0, -1, 2, 0.5, 0.5, 0, 1]; // [2, 4]
const B = [1, 2, 0, 1, -1, 0, 0.5, -0.5]; // [4, 2]

beforeAll(async () => {
  platform = await startTestPlatform();
  const models = join(platform.root, 'models');
  writeTinyModel(join(models, 'base'), { [Q]: { shape: [4, 4], values: BASE_Q }, 'model.norm.weight': { shape: [4], values: [1, 1, 1, 1] } }, { model_type: 'llama' });
  writeTinyModel(join(models, 'narrow'), { [Q]: { shape: [4, 2], values: new Array(8).fill(0) } }, { model_type: 'llama' });
  const adapter = join(models, 'adapter');
  mkdirSync(adapter, { recursive: true });
  writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] }));
  writeSafetensorsFile(join(adapter, 'adapter_model.safetensors'), [
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', dtype: 'F32', shape: [2, 4], data: encodeFromFloat32(Float32Array.from(A), 'F32') },
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', dtype: 'F32', shape: [4, 2], data: encodeFromFloat32(Float32Array.from(B), 'F32') },
  ]);
});

afterAll(() => platform?.stop());

it('registers an adapter as a fine-tune of its base, refuses it otherwise, and merges it through the API', async () => {
  const models = join(platform.root, 'models');
  const base = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(models, 'base') } })).data!.registerModel.model.id;
  const narrow = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'narrow', kind: 'BASE', path: join(models, 'narrow') } })).data!.registerModel.model.id;
  const count = await platform.prisma.model.count();
  const asBase = await platform.gql(REGISTER, { input: { name: 'adapter-base', kind: 'BASE', path: join(models, 'adapter') } });
  expect(asBase.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(asBase.errors![0].message).toContain('is a LoRA adapter: register it as a FINETUNE whose one parent is the model it adapts');
  const misfit = await platform.gql(REGISTER, { input: { name: 'adapter-narrow', kind: 'FINETUNE', path: join(models, 'adapter'), parentIds: [narrow] } });
  expect(misfit.errors![0].message).toMatch(/^not an adapter of "narrow": .*B·A is \[4,4\], but "model\.layers\.0\.self_attn\.q_proj\.weight" of .* is \[4,2\]/);
  expect(await platform.prisma.model.count()).toBe(count);
  const registered = await platform.gql<{ registerModel: { model: { id: string; kind: string; architecture: string; checkpoint: { sha256: string; tensorCount: number } } } }>(REGISTER, { input: { name: 'adapter', kind: 'FINETUNE', path: join(models, 'adapter'), parentIds: [base] } });
  expect(registered.errors).toBeUndefined();
  expect(registered.data!.registerModel.model).toMatchObject({ kind: 'FINETUNE', architecture: 'lora (r 2)', checkpoint: { sha256: sha256File(join(models, 'adapter', 'adapter_model.safetensors')), tensorCount: 2 } });
  const started = await platform.gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', { input: { name: 'with-adapter', method: 'task_arithmetic', baseModelId: base, models: [{ modelId: registered.data!.registerModel.model.id, parameters: { weight: 1 } }] } });
  expect(started.errors).toBeUndefined();
  const worker = await platform.startWorker();
  const id = started.data!.startMerge.merge.id;
  await waitFor(async () => (await platform.prisma.merge.findUniqueOrThrow({ where: { id } })).status === 'COMPLETED', `the merge (worker:\n${worker.output()})`, 60000);
  const merge = await platform.prisma.merge.findUniqueOrThrow({ where: { id }, include: { outputModel: { include: { checkpoint: true } } } });
  // Its config names llama but no architecture (a tensors-only checkpoint): merged, not scored, and the result says why.
  expect((merge.result as { evaluation?: string }).evaluation).toMatch(/^not evaluated: it cannot be run: .*config\.json: hidden_size: must be a positive integer/);
  const merged = readTensorValues(merge.outputModel!.checkpoint.uri.replace('file://', ''), Q);
  // base + (α/r)·B·A, by hand.
  const expected = BASE_Q.map((v, idx) => {
    const [o, i] = [Math.floor(idx / 4), idx % 4];
    return v + 2 * (B[o * 2] * A[i] + B[o * 2 + 1] * A[4 + i]);
  });
  merged.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-6));
});
