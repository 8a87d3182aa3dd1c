/**
 * A model's life after registration and a job's second chance, against a real server, PostgreSQL
 * and worker process: edit name, description and tags; archive (hidden from listings, lineage
 * kept); delete (refused while anything depends on it, files left in place); retry a cancelled
 * merge, which a worker then completes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { graphqlClient, waitFor } from './helpers/graphql';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { testToken } from './helpers/tokens';

jest.setTimeout(60000);
let platform: TestPlatform;
const ids = { base: '', ft1: '', ft2: '' };
const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
const names = async (filter: Record<string, unknown> = {}) => (await platform.gql<{ models: { nodes: Array<{ name: string }> } }>('query($f: ModelFilterInput) { models(filter: $f) { nodes { name } } }', { f: filter })).data!.models.nodes.map((m) => m.name);

beforeAll(async () => {
  platform = await startTestPlatform();
  writeSyntheticFamily(join(platform.root, 'models'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 2, seed: 8 });
  ids.base = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(platform.root, 'models/base') } })).data!.registerModel.model.id;
  for (const f of [1, 2] as const) {
    ids[`ft${f}`] = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: `ft-${f}`, kind: 'FINETUNE', path: join(platform.root, `models/finetune-${f}`), parentIds: [ids.base] } })).data!.registerModel.model.id;
  }
});

afterAll(() => platform?.stop());

it('edits a model, archives it out of listings and back, and filters by tags', async () => {
  const UPDATE = 'mutation($id: ID!, $input: UpdateModelInput!) { updateModel(id: $id, input: $input) { model { name description tags } } }';
  const updated = await platform.gql<{ updateModel: { model: { name: string; description: string; tags: string[] } } }>(UPDATE, { id: ids.ft1, input: { name: 'ft-one', description: 'digits, 200 steps', tags: ['vision', 'digits', 'vision'] } });
  expect(updated.data!.updateModel.model).toEqual({ name: 'ft-one', description: 'digits, 200 steps', tags: ['vision', 'digits'] });
  expect((await platform.gql(UPDATE, { id: ids.ft1, input: { name: 'base' } })).errors![0]).toMatchObject({ message: 'a model named "base" already exists', extensions: { code: 'CONFLICT' } });
  expect((await platform.gql(UPDATE, { id: ids.ft1, input: { tags: ['no spaces allowed'] } })).errors![0].extensions.code).toBe('BAD_USER_INPUT');
  expect(await names({ tags: ['digits'] })).toEqual(['ft-one']);
  await platform.gql('mutation($id: ID!) { archiveModel(id: $id) { model { archivedAt } } }', { id: ids.ft2 });
  expect(await names()).toEqual(['base', 'ft-one']);
  expect(await names({ includeArchived: true })).toEqual(['base', 'ft-one', 'ft-2']);
  // Archived, it is still in its base's lineage.
  const lineage = await platform.gql<{ lineage: { nodes: Array<{ name: string }> } }>('query($id: ID!) { lineage(baseId: $id) { nodes { name } } }', { id: ids.base });
  expect(lineage.data!.lineage.nodes.map((n) => n.name)).toContain('ft-2');
  await platform.gql('mutation($id: ID!) { archiveModel(id: $id, archived: false) { model { archivedAt } } }', { id: ids.ft2 });
  expect(await names()).toEqual(['base', 'ft-one', 'ft-2']);
});

it('deletes a model nothing depends on, and refuses one that others derive from', async () => {
  const DELETE = 'mutation($id: ID!) { deleteModel(id: $id) { id name } }';
  const refused = await platform.gql(DELETE, { id: ids.base });
  expect(refused.errors![0]).toMatchObject({ extensions: { code: 'CONFLICT' } });
  expect(refused.errors![0].message).toMatch(/model "base" cannot be deleted: model "ft-one" derives from it; model "ft-2" derives from it\. Archive it instead/);
  const checkpoints = await platform.prisma.checkpoint.count();
  const deleted = await platform.gql<{ deleteModel: { name: string } }>(DELETE, { id: ids.ft2 });
  expect(deleted.data!.deleteModel.name).toBe('ft-2');
  expect(await names({ includeArchived: true })).toEqual(['base', 'ft-one']);
  expect(await platform.prisma.checkpoint.count()).toBe(checkpoints - 1);
  expect(await platform.prisma.lineageEdge.count({ where: { childId: ids.ft2 } })).toBe(0);
  expect(existsSync(join(platform.root, 'models/finetune-2/model.safetensors'))).toBe(true);
  expect((await platform.gql(DELETE, { id: ids.ft2 })).errors![0].extensions.code).toBe('NOT_FOUND');
});

it('retries a cancelled merge as it was requested, and a worker completes it; only its owner or an admin may', async () => {
  const token = await testToken(platform.prisma, 'OPERATOR', 'owner');
  const owner = graphqlClient(platform.server.url, token);
  const stranger = graphqlClient(platform.server.url, await testToken(platform.prisma, 'OPERATOR', 'stranger'));
  const started = await owner<{ startMerge: { merge: { id: string } } }>('mutation($m: ID!) { startMerge(input: { name: "second-chance", method: "linear", models: [{ modelId: $m, parameters: { weight: 1 } }] }) { merge { id } } }', { m: ids.ft1 });
  const id = started.data!.startMerge.merge.id;
  const RETRY = 'mutation($id: ID!) { retryJob(id: $id) { kind status } }';
  expect((await owner(RETRY, { id })).errors![0]).toMatchObject({ message: `job ${id} is QUEUED; only a FAILED or CANCELLED job can be retried`, extensions: { code: 'CONFLICT' } });
  await owner('mutation($id: ID!) { cancelJob(id: $id) { status } }', { id });
  expect((await stranger(RETRY, { id })).errors![0].extensions.code).toBe('FORBIDDEN');
  expect((await owner<{ retryJob: { kind: string; status: string } }>(RETRY, { id })).data!.retryJob).toEqual({ kind: 'MERGE', status: 'QUEUED' });
  // Cancelled and retried once more (the database connection a retry used must stay usable).
  expect((await owner('mutation($id: ID!) { cancelJob(id: $id) { status } }', { id })).errors).toBeUndefined();
  expect((await owner(RETRY, { id })).errors).toBeUndefined();
  const worker = await platform.startWorker();
  try {
    await waitFor(async () => (await platform.prisma.merge.findUniqueOrThrow({ where: { id } })).status === 'COMPLETED', `the retried merge (worker:\n${worker.output()})`, 30000);
  } finally {
    await worker.stop();
  }
  const events = await platform.prisma.jobEvent.findMany({ where: { jobId: id, phase: 'status' }, orderBy: { id: 'asc' } });
  expect(events.map((e) => e.status)).toEqual(['QUEUED', 'CANCELLED', 'QUEUED', 'CANCELLED', 'QUEUED', 'RUNNING', 'COMPLETED']);
  expect(events[2].message).toBe('queued again on request of token "owner"');
  expect(await platform.prisma.model.count({ where: { name: 'second-chance' } })).toBe(1);
  expect((await owner(RETRY, { id })).errors![0].extensions.code).toBe('CONFLICT');
});
