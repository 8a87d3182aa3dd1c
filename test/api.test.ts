/** The GraphQL API over HTTP against a real PostgreSQL: registration, errors with codes, paging, lineage, the schema snapshot. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApiServer, ApiServer } from '../src/api/server';
import { schemaText } from '../src/api/schema';
import { SCHEMA_FILE } from '../src/api/emit-schema';
import { createPrisma, PrismaClient } from '../src/store/client';
import { migrate } from '../src/store/migrate';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { sha256File } from '../src/engine/checkpoint/files';
import { saveTaskData } from '../src/engine/data/task-data';
import { namedRoots } from '../src/store/data-roots';
import { createTestDatabase } from './helpers/database';
import { testToken } from './helpers/tokens';
import { removeTempDirs, tempDir, writeBytes } from './helpers/files';
import { graphqlClient } from './helpers/graphql';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let prisma: PrismaClient;
let server: ApiServer;
let root: string;

let gql: ReturnType<typeof graphqlClient>;

const REGISTER = `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id name kind architecture checkpoint { sha256 tensorCount parameterCount dtype } } } }`;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  prisma = createPrisma(database.url);
  root = tempDir();
  writeSyntheticFamily(join(root, 'models'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }, { name: 'layers.1.w', shape: [4, 4] }], fineTunes: 2, seed: 1 });
  server = await startApiServer({ prisma, dataRoots: namedRoots([root]) });
  gql = graphqlClient(server.url, await testToken(prisma, 'ADMIN'));
});

afterAll(async () => {
  await server?.stop();
  await prisma?.$disconnect();
  await database?.drop();
  removeTempDirs();
});

it('keeps schema/schema.graphql current (run npm run emit-schema after changing the API)', async () => {
  expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(await schemaText());
});

it('names types without a Type suffix and checks enum inputs in the schema: a level or estimator outside its enum is refused before any resolver runs', async () => {
  const schema = readFileSync(SCHEMA_FILE, 'utf8');
  for (const type of ['Model', 'Task', 'Evaluation', 'Merge', 'MergeInput', 'ImportanceAnalysis', 'Checkpoint', 'LineageGraph', 'LineageEdge', 'JobEvent', 'MergeMethod', 'MethodParameter', 'Worker']) expect(schema).toMatch(new RegExp(`^type ${type}( implements Node)? \\{`, 'm'));
  for (const type of ['Model', 'Task', 'Evaluation', 'Merge', 'ImportanceAnalysis', 'Checkpoint', 'EvaluationRun']) expect(schema).toContain(`type ${type} implements Node {`);
  expect(schema).not.toMatch(/^type \w+Type\b/m);
  for (const e of ['PartitionLevel', 'Estimator', 'JobKind', 'LineageRelation', 'OutputDtype']) expect(schema).toContain(`enum ${e} {`);
  const before = await prisma.importanceAnalysis.count();
  const wrong = await gql('mutation { startAnalysis(input: { modelId: "m", taskId: "t", level: "row" }) { analysis { id } } }');
  expect(wrong.errors![0]).toMatchObject({ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  expect(wrong.errors![0].message).toMatch(/Enum "PartitionLevel" cannot represent non-enum value: "row"/);
  const unknown = await gql('mutation($i: StartAnalysisInput!) { startAnalysis(input: $i) { analysis { id } } }', { i: { modelId: 'm', taskId: 't', estimator: 'FAST' } });
  expect(unknown.errors![0].message).toMatch(/Value "FAST" does not exist in "Estimator" enum/);
  expect(await prisma.importanceAnalysis.count()).toBe(before);
});

it('registers a base and its fine-tunes from checkpoint paths, hashed, with lineage', async () => {
  const base = await gql<{ registerModel: { model: { id: string; kind: string; architecture: string; checkpoint: { tensorCount: number; parameterCount: number; sha256: string; dtype: string } } } }>(REGISTER, {
    input: { name: 'base', kind: 'BASE', path: join(root, 'models/base') },
  });
  expect(base.errors).toBeUndefined();
  expect(base.data!.registerModel.model.checkpoint).toEqual({ tensorCount: 2, parameterCount: 32, dtype: 'F32', sha256: sha256File(join(root, 'models/base/model.safetensors')) });
  expect(base.data!.registerModel.model.architecture).toBe('synthetic');
  const baseId = base.data!.registerModel.model.id;
  for (const f of [1, 2]) {
    const ft = await gql(REGISTER, { input: { name: `ft-${f}`, kind: 'FINETUNE', path: join(root, `models/finetune-${f}`), parentIds: [baseId] } });
    expect(ft.errors).toBeUndefined();
  }
  const lineage = await gql<{ lineage: { nodes: Array<{ name: string; depth: number }>; edges: unknown[] } }>(`query($id: ID!) { lineage(baseId: $id) { nodes { name depth } edges { parentId childId relation } } }`, { id: baseId });
  expect(lineage.data!.lineage.nodes).toEqual([{ name: 'base', depth: 0 }, { name: 'ft-1', depth: 1 }, { name: 'ft-2', depth: 1 }]);

  // The checkpoint's tensors, a page at a time, from its headers; its model card once it has one.
  type Tensors = { model: { checkpoint: { modelCard: string | null; tensors: { totalCount: number; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string }; edges: Array<{ node: { name: string; dtype: string; shape: number[]; parameters: number; file: string } }> } } } };
  const TENSORS = 'query($id: ID!, $after: String, $name: String) { model(id: $id) { checkpoint { modelCard tensors(first: 1, after: $after, nameContains: $name) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { node { name dtype shape parameters file } } } } } }';
  const first = (await gql<Tensors>(TENSORS, { id: baseId })).data!.model.checkpoint;
  expect(first.modelCard).toBeNull();
  expect(first.tensors).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true, hasPreviousPage: false }, edges: [{ node: { name: 'layers.0.w', dtype: 'F32', shape: [4, 4], parameters: 16, file: 'model.safetensors' } }] });
  const second = (await gql<Tensors>(TENSORS, { id: baseId, after: first.tensors.pageInfo.endCursor })).data!.model.checkpoint.tensors;
  expect(second).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: false, hasPreviousPage: true }, edges: [{ node: { name: 'layers.1.w' } }] });
  expect((await gql<Tensors>(TENSORS, { id: baseId, name: '1.w' })).data!.model.checkpoint.tensors).toMatchObject({ totalCount: 1, edges: [{ node: { name: 'layers.1.w' } }] });
  const badCursor = await gql(TENSORS, { id: baseId, after: 'bm9wZQ' });
  expect(badCursor.errors![0]).toMatchObject({ message: 'after: "bm9wZQ" is not a cursor of this list', extensions: { code: 'BAD_USER_INPUT' } });
  writeFileSync(join(root, 'models/base/README.md'), '# base\nA synthetic base model.\n');
  expect((await gql<Tensors>(TENSORS, { id: baseId })).data!.model.checkpoint.modelCard).toBe('# base\nA synthetic base model.\n');
  expect(lineage.data!.lineage.edges).toHaveLength(2);
  const models = await gql<{ models: { nodes: Array<{ name: string; ancestors: Array<{ name: string }> }> } }>(`{ models(first: 2, filter: { kind: FINETUNE }) { nodes { name ancestors { name } } pageInfo { hasNextPage endCursor } } }`);
  expect(models.data!.models.nodes).toEqual([{ name: 'ft-1', ancestors: [{ name: 'base' }] }, { name: 'ft-2', ancestors: [{ name: 'base' }] }]);
  type Page = { models: { totalCount: number; nodes: Array<{ name: string }>; edges: Array<{ cursor: string; node: { name: string } }>; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string } } };
  const PAGE = 'query($after: String, $order: ModelOrder, $filter: ModelFilterInput) { models(first: 2, after: $after, orderBy: $order, filter: $filter) { totalCount nodes { name } edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage endCursor } } }';
  const all1 = (await gql<Page>(PAGE)).data!.models;
  expect(all1).toMatchObject({ totalCount: 3, nodes: [{ name: 'base' }, { name: 'ft-1' }], pageInfo: { hasNextPage: true, hasPreviousPage: false, endCursor: all1.edges[1].cursor } });
  expect(all1.edges.map((e) => e.node)).toEqual(all1.nodes);
  const all2 = (await gql<Page>(PAGE, { after: all1.pageInfo.endCursor })).data!.models;
  expect(all2).toMatchObject({ totalCount: 3, nodes: [{ name: 'ft-2' }], pageInfo: { hasNextPage: false, hasPreviousPage: true } });
  // Ordered by name, descending; filtered to the lineage below the base, by name (case-insensitive).
  expect((await gql<Page>(PAGE, { order: { field: 'NAME', direction: 'DESC' } })).data!.models.nodes).toEqual([{ name: 'ft-2' }, { name: 'ft-1' }]);
  expect((await gql<Page>(PAGE, { filter: { baseId, nameContains: 'FT-' } })).data!.models).toMatchObject({ totalCount: 2, nodes: [{ name: 'ft-1' }, { name: 'ft-2' }] });
  expect((await gql<Page>(PAGE, { filter: { createdBy: 'nobody' } })).data!.models).toMatchObject({ totalCount: 0, nodes: [], pageInfo: { hasNextPage: false, endCursor: null } });
  const foreign = await gql(PAGE, { after: Buffer.from('task:x').toString('base64url') });
  expect(foreign.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' }, message: expect.stringMatching(/^after: .* is not a cursor of this list/) });

  // Any entity by its id, through the Node interface.
  const node = await gql<{ node: { __typename: string; id: string; name?: string } }>('query($id: ID!) { node(id: $id) { __typename id ... on Model { name } } }', { id: baseId });
  expect(node.data!.node).toEqual({ __typename: 'Model', id: baseId, name: 'base' });
  const checkpointId = (await gql<{ model: { checkpoint: { id: string } } }>('query($id: ID!) { model(id: $id) { checkpoint { id } } }', { id: baseId })).data!.model.checkpoint.id;
  expect((await gql<{ node: { __typename: string; tensorCount: number } }>('query($id: ID!) { node(id: $id) { __typename ... on Checkpoint { tensorCount } } }', { id: checkpointId })).data!.node).toEqual({ __typename: 'Checkpoint', tensorCount: 2 });
  const missing = await gql('{ node(id: "00000000-0000-0000-0000-000000000000") { id } }');
  expect(missing.errors![0]).toMatchObject({ message: 'nothing has id 00000000-0000-0000-0000-000000000000', extensions: { code: 'NOT_FOUND' } });
});

it('answers bad requests with a code and a precise message, and writes no rows', async () => {
  const before = await prisma.checkpoint.count();
  const outside = await gql(REGISTER, { input: { name: 'x', kind: 'BASE', path: '/etc' } });
  expect(outside.errors![0].extensions.code).toBe('FORBIDDEN');
  expect(outside.errors![0].message).toMatch(/outside the configured data roots/);
  const bad = writeBytes(join(root, 'bad.safetensors'), Uint8Array.from([1, 2, 3]));
  const truncated = await gql(REGISTER, { input: { name: 'x', kind: 'BASE', path: bad } });
  expect(truncated.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(truncated.errors![0].message).toMatch(/bad.safetensors: truncated: 3 bytes/);
  const duplicate = await gql(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(root, 'models/base') } });
  expect(duplicate.errors![0]).toMatchObject({ message: 'a model named "base" already exists', extensions: { code: 'CONFLICT' } });
  const orphan = await gql(REGISTER, { input: { name: 'orphan', kind: 'FINETUNE', path: join(root, 'models/finetune-1'), parentIds: ['00000000-0000-0000-0000-000000000000'] } });
  expect(orphan.errors![0].extensions.code).toBe('NOT_FOUND');
  const missing = await gql(`{ model(id: "00000000-0000-0000-0000-000000000000") { name } }`);
  expect(missing.errors![0].extensions.code).toBe('NOT_FOUND');
  expect(await prisma.checkpoint.count()).toBe(before);
});

it('registers tasks from validated data files and shows parents, children and evaluations', async () => {
  const split = { inputs: new Uint8Array(4 * 4), exampleShape: [2, 2], labels: Int32Array.from([0, 1, 2, 1]), count: 4 };
  const file = join(root, 'digits.safetensors');
  saveTaskData(file, { name: 'digits', classes: 3, description: 'tiny', seed: 1 }, { probe: split, test: split });
  const REGISTER_TASK = `mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id name kind classes } } }`;
  const task = await gql<{ registerTask: { task: { id: string; classes: number; name: string } } }>(REGISTER_TASK, { input: { name: 'digits', path: file } });
  expect(task.errors).toBeUndefined();
  expect(task.data!.registerTask.task).toMatchObject({ name: 'digits', kind: 'CLASSIFICATION', classes: 3 });
  // Token labels [n, length] (−100 unscored) in a safetensors task file make a language-model task.
  const tokens = { inputs: Int32Array.from([1, 2, 3, 4, 4, 3, 2, 1]), exampleShape: [4], labels: Int32Array.from([-100, -100, 3, 4, -100, -100, 2, 1]), count: 2, labelsPerExample: 4 };
  const lmFile = join(root, 'echo.safetensors');
  saveTaskData(lmFile, { name: 'echo', classes: 5, description: 'tiny LM task', seed: 1 }, { probe: tokens, test: tokens });
  const lmTask = await gql<{ registerTask: { task: { kind: string; classes: number } } }>(REGISTER_TASK, { input: { name: 'echo', path: lmFile } });
  expect(lmTask.errors).toBeUndefined();
  expect(lmTask.data!.registerTask.task).toMatchObject({ kind: 'LANGUAGE_MODEL', classes: 5 });
  const noProbe = join(root, 'noprobe.safetensors');
  saveTaskData(noProbe, { name: 'x', classes: 3, description: '', seed: 1 }, { test: split });
  const rejected = await gql(`mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id } } }`, { input: { name: 'x', path: noProbe } });
  expect(rejected.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(rejected.errors![0].message).toMatch(/has no "probe" split/);

  const ft = await prisma.model.findUniqueOrThrow({ where: { name: 'ft-1' } });
  await prisma.evaluation.create({ data: { modelId: ft.id, taskId: task.data!.registerTask.task.id, split: 'test', metric: 'accuracy', value: 0.9 } });
  const view = await gql<{ model: { parents: Array<{ relation: string; model: { name: string } }>; evaluations: Array<{ split: string; value: number; task: { name: string } }> } }>(
    `query($id: ID!) { model(id: $id) { parents { relation model { name } } evaluations { nodes { split value task { name } } } } }`,
    { id: ft.id },
  );
  expect(view.data!.model).toEqual({ parents: [{ relation: 'FINETUNE', model: { name: 'base' } }], evaluations: { nodes: [{ split: 'test', value: 0.9, task: { name: 'digits' } }] } });
  const base = await prisma.model.findUniqueOrThrow({ where: { name: 'base' } });
  const children = await gql<{ model: { children: Array<{ model: { name: string } }> } }>(`query($id: ID!) { model(id: $id) { children { model { name } } } }`, { id: base.id });
  expect(children.data!.model.children.map((c) => c.model.name)).toEqual(['ft-1', 'ft-2']);
});

it('lists the merge methods startMerge accepts, with their parameters and defaults', async () => {
  type Param = { name: string; type: string; default: unknown; choices: string[] | null; min: number | null };
  const result = await gql<{ methods: Array<{ name: string; needsBase: boolean; stochastic: boolean; globalParameters: Param[]; modelParameters: Param[] }> }>(
    `{ methods { name needsBase stochastic globalParameters { name type default choices min } modelParameters { name type default choices min } } }`,
  );
  expect(result.errors).toBeUndefined();
  const byName = new Map(result.data!.methods.map((m) => [m.name, m]));
  expect(byName.get('linear')).toMatchObject({ needsBase: false, stochastic: false });
  expect(byName.get('dare_ties')).toMatchObject({ needsBase: true, stochastic: true });
  const apl = byName.get('apl')!;
  expect(apl.globalParameters.find((p) => p.name === 'level')).toEqual({ name: 'level', type: 'string', default: 'row', choices: ['model', 'layer', 'row', 'unit'], min: null });
  expect(apl.modelParameters.map((p) => p.name)).toEqual(expect.arrayContaining(['weight', 'density', 'probe', 'importance']));
  expect(byName.get('ties')!.modelParameters.find((p) => p.name === 'density')).toMatchObject({ type: 'number' });
});
