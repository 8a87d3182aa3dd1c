/**
 * What the API refuses before writing anything, against a real server and PostgreSQL: names,
 * parents, empty checkpoints, malformed ids, out-of-range depths, unreachable bases, probe tasks
 * without a head, numbers JSON cannot hold, and one output name requested twice at once.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { saveTaskData } from '../src/engine/data/task-data';
import { startTestPlatform, TestPlatform } from './helpers/platform';

let platform: TestPlatform;
const ids = { base: '', ft: '', other: '', task: '' };
const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
const START = 'mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }';

const counts = () => Promise.all([platform.prisma.model.count(), platform.prisma.checkpoint.count(), platform.prisma.lineageEdge.count(), platform.prisma.merge.count(), platform.prisma.mergeInput.count(), platform.prisma.jobEvent.count()]);

/** Sends a request that must be refused with `code` and a message matching `message`, and checks nothing was written. */
async function refused(query: string, variables: Record<string, unknown>, code: string, message: RegExp): Promise<void> {
  const before = await counts();
  const result = await platform.gql(query, variables);
  expect({ code: result.errors?.[0]?.extensions.code, message: result.errors?.[0]?.message }).toEqual({ code, message: expect.stringMatching(message) });
  expect(await counts()).toEqual(before);
}

beforeAll(async () => {
  platform = await startTestPlatform();
  const { root } = platform;
  // A data root folder whose name starts with two dots is still inside the root.
  writeSyntheticFamily(join(root, '..models'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 1, seed: 2 });
  writeSyntheticFamily(join(root, 'other'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 1, seed: 3 });
  const base = await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(root, '..models/base') } });
  expect(base.errors).toBeUndefined();
  ids.base = base.data!.registerModel.model.id;
  ids.ft = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'ft', kind: 'FINETUNE', path: join(root, '..models/finetune-1'), parentIds: [ids.base] } })).data!.registerModel.model.id;
  ids.other = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'other', kind: 'BASE', path: join(root, 'other/base') } })).data!.registerModel.model.id;
  const split = { inputs: new Uint8Array(4 * 4), exampleShape: [2, 2], labels: Int32Array.from([0, 1, 2, 1]), count: 4 };
  saveTaskData(join(root, 'task.safetensors'), { name: 'digits', classes: 3, description: '', seed: 1 }, { probe: split });
  ids.task = (await platform.gql<{ registerTask: { task: { id: string } } }>('mutation($p: String!) { registerTask(input: { name: "digits", path: $p }) { task { id } } }', { p: join(root, 'task.safetensors') })).data!.registerTask.task.id;
});

afterAll(() => platform?.stop());

it('registerModel refuses bad names, parents and empty checkpoints', async () => {
  const path = join(platform.root, 'other/finetune-1');
  await refused(REGISTER, { input: { name: '', kind: 'BASE', path } }, 'BAD_USER_INPUT', /^name must not be empty$/);
  await refused(REGISTER, { input: { name: 'x'.repeat(201), kind: 'BASE', path } }, 'BAD_USER_INPUT', /^name is 201 characters long; at most 200$/);
  await refused(REGISTER, { input: { name: 'tab\there', kind: 'BASE', path } }, 'BAD_USER_INPUT', /contains a control character/);
  await refused(REGISTER, { input: { name: 'm', kind: 'MERGE', path } }, 'BAD_USER_INPUT', /a merge needs parentIds/);
  await refused(REGISTER, { input: { name: 'twice', kind: 'FINETUNE', path, parentIds: [ids.other, ids.other] } }, 'BAD_USER_INPUT', new RegExp(`parentIds: ${ids.other} is listed twice`));
  mkdirSync(join(platform.root, 'empty'), { recursive: true });
  const header = Buffer.from('{}');
  const empty = Buffer.alloc(8 + header.length);
  empty.writeBigUInt64LE(BigInt(header.length));
  header.copy(empty, 8);
  writeFileSync(join(platform.root, 'empty', 'model.safetensors'), empty);
  await refused(REGISTER, { input: { name: 'empty', kind: 'BASE', path: join(platform.root, 'empty') } }, 'BAD_USER_INPUT', /the checkpoint holds no tensors/);
});

it('ids are UUIDs and depths are in range, or the argument is named', async () => {
  await refused('{ model(id: "nope") { id } }', {}, 'BAD_USER_INPUT', /^id: "nope" is not an id \(ids are UUIDs/);
  await refused(START, { input: { method: 'linear', models: [{ modelId: ids.ft }, { modelId: 'x-1' }] } }, 'BAD_USER_INPUT', /^input\.models\[1\]\.modelId: "x-1" is not an id/);
  await refused(`{ model(id: "${ids.ft}") { ancestors(depth: 0) { id } } }`, {}, 'BAD_USER_INPUT', /^depth must be from 1 to 64, got 0$/);
  await refused(`{ model(id: "${ids.ft}") { descendants(depth: 1000) { id } } }`, {}, 'BAD_USER_INPUT', /^depth must be from 1 to 64, got 1000$/);
});

it('startMerge names a missing base alone, refuses an unrelated base, a probe task without a head, and 1e400', async () => {
  const missing = '00000000-0000-4000-8000-000000000000';
  await refused(START, { input: { method: 'task_arithmetic', baseModelId: missing, models: [{ modelId: ids.ft, parameters: { weight: 1 } }] } }, 'NOT_FOUND', new RegExp(`^baseModelId: base model ${missing} does not exist$`));
  await refused(START, { input: { method: 'task_arithmetic', baseModelId: ids.other, models: [{ modelId: ids.ft, parameters: { weight: 1 } }] } }, 'BAD_USER_INPUT', /models\[0\]: the base \S+ is not an ancestor of "ft"; merge against its base, or pass allowUnrelatedBase: true/);
  await refused(START, { input: { method: 'apl', baseModelId: ids.base, models: [{ modelId: ids.ft, probeTaskId: ids.task }] } }, 'BAD_USER_INPUT', /models\[0\]\.probeTaskId: "ft" cannot be scored on probe data: model_type "synthetic" is not a family the engine runs/);
  // JSON.parse reads 1e400 as Infinity, which PostgreSQL's JSON would store as null.
  const before = await counts();
  const response = await fetch(platform.server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${platform.token}` },
    body: `{"query": ${JSON.stringify(START)}, "variables": {"input": {"method": "task_arithmetic", "baseModelId": "${ids.base}", "models": [{"modelId": "${ids.ft}", "parameters": {"weight": 1e400}}]}}}`,
  });
  const body = (await response.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
  expect(body.errors[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(body.errors[0].message).toMatch(/^input\.models\[0\]\.parameters\.weight: Infinity is not a finite number/);
  expect(await counts()).toEqual(before);
  // allowUnrelatedBase lets an unrelated base through, and is recorded with the merge.
  const allowed = await platform.gql<{ startMerge: { merge: { id: string } } }>(START, { input: { method: 'task_arithmetic', baseModelId: ids.other, allowUnrelatedBase: true, models: [{ modelId: ids.ft, parameters: { weight: 1 } }] } });
  expect(allowed.errors).toBeUndefined();
  expect((await platform.prisma.merge.findUniqueOrThrow({ where: { id: allowed.data!.startMerge.merge.id } })).parameters).toMatchObject({ allowUnrelatedBase: true });
});

it('reserves an output name when the merge is requested: of two concurrent requests for one name, one queues', async () => {
  await refused(START, { input: { name: '', method: 'linear', models: [{ modelId: ids.ft, parameters: { weight: 1 } }] } }, 'BAD_USER_INPUT', /^name must not be empty$/);
  const input = { name: 'contested', method: 'linear', models: [{ modelId: ids.ft, parameters: { weight: 1 } }] };
  const results = await Promise.all(Array.from({ length: 4 }, () => platform.gql<{ startMerge: { merge: { id: string } } }>(START, { input })));
  expect(results.filter((r) => r.errors === undefined)).toHaveLength(1);
  for (const r of results.filter((r) => r.errors)) expect(r.errors![0]).toMatchObject({ extensions: { code: 'CONFLICT' } });
  expect(await platform.prisma.merge.count({ where: { outputName: 'contested' } })).toBe(1);
  // Once that merge is cancelled, the name is free again.
  const winner = results.find((r) => r.errors === undefined)!.data!.startMerge.merge.id;
  expect((await platform.gql('mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: winner })).errors).toBeUndefined();
  expect((await platform.gql(START, { input })).errors).toBeUndefined();
});
