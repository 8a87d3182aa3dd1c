/**
 * No N+1 in the API: a page of models with their checkpoints, evaluations, parents and children
 * (and a page of analyses with their models and tasks) costs the same number of SQL statements
 * for 5 models as for 40, counted on the real server's database client (statements on the
 * registry's tables).
 */
import { startApiServer, ApiServer } from '../src/api/server';
import { createPrisma, PrismaClient } from '../src/store/client';
import { namedRoots } from '../src/store/data-roots';
import { migrate } from '../src/store/migrate';
import { ScratchDatabase } from '../src/store/scratch';
import { createTestDatabase } from './helpers/database';
import { graphqlClient } from './helpers/graphql';
import { testToken } from './helpers/tokens';

let database: ScratchDatabase;
let prisma: PrismaClient;
let server: ApiServer;
let gql: ReturnType<typeof graphqlClient>;
let statements = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  // Statements on the registry's tables (not the token check, whose bookkeeping writes depend on time).
  prisma = createPrisma(database.url, { onQuery: (sql) => void (/"(models|checkpoints|evaluations|lineage_edges|tasks|importance_analyses)"/.test(sql) && statements++) });
  server = await startApiServer({ prisma, dataRoots: namedRoots([]) });
  gql = graphqlClient(server.url, await testToken(prisma, 'ADMIN'));
});

afterAll(async () => {
  await server?.stop();
  await prisma?.$disconnect();
  await database?.drop();
});

/** A base with `count` fine-tunes, each evaluated on one task and analysed once. */
async function family(prefix: string, count: number): Promise<void> {
  const checkpoint = () => prisma.checkpoint.create({ data: { uri: 'file:///x', sha256: 'a', bytes: 1n, dtype: 'F32', parameterCount: 1n, tensorCount: 1 } });
  const task = await prisma.task.create({ data: { name: `${prefix}-task`, classes: 2, dataUri: 'file:///t' } });
  const base = await prisma.model.create({ data: { name: `${prefix}-base`, kind: 'BASE', architecture: 'mlp', checkpointId: (await checkpoint()).id } });
  for (let i = 0; i < count; i++) {
    const ft = await prisma.model.create({ data: { name: `${prefix}-ft-${i}`, kind: 'FINETUNE', architecture: 'mlp', checkpointId: (await checkpoint()).id } });
    await prisma.lineageEdge.create({ data: { parentId: base.id, childId: ft.id, relation: 'finetune' } });
    await prisma.evaluation.create({ data: { modelId: ft.id, taskId: task.id, split: 'test', metric: 'accuracy', value: i / count } });
    await prisma.importanceAnalysis.create({ data: { modelId: ft.id, taskId: task.id, baseModelId: base.id, level: 'row', estimator: 'exact', status: 'COMPLETED' } });
  }
}

async function counted(query: string, variables: Record<string, unknown>): Promise<{ statements: number; data: Record<string, unknown> }> {
  const before = statements;
  const result = await gql(query, variables);
  expect(result.errors).toBeUndefined();
  return { statements: statements - before, data: result.data! };
}

const MODELS = `query($name: String!) { models(filter: { nameContains: $name }, first: 100) { nodes { name checkpoint { sha256 } evaluations { nodes { value task { name } } } parents { relation model { name } } children { model { name } } } } }`;
const ANALYSES = `{ analyses(first: 100) { nodes { id model { name } baseModel { name } task { name } } } }`;

it('answers a page of models with nested fields in the same number of statements for 5 models as for 40', async () => {
  await family('small', 5);
  await family('large', 40);
  const small = await counted(MODELS, { name: 'small-' });
  const large = await counted(MODELS, { name: 'large-' });
  expect((small.data.models as { nodes: unknown[] }).nodes).toHaveLength(6);
  expect((large.data.models as { nodes: Array<{ name: string; parents: Array<{ model: { name: string } }> }> }).nodes.find((m) => m.name === 'large-ft-7')!.parents).toEqual([{ relation: 'FINETUNE', model: { name: 'large-base' } }]);
  expect(large.statements).toBe(small.statements);
  // Per model it would have been 4 statements or more: 40 models cost far less than 40.
  // The page and its total count, then checkpoints, evaluations with their tasks, parents and children with their models: 9.
  expect(large.statements).toBeLessThanOrEqual(9);
});

it('answers a page of analyses with their models and tasks in a fixed number of statements', async () => {
  const all = await counted(ANALYSES, {});
  expect((all.data.analyses as { nodes: unknown[] }).nodes.length).toBe(45);
  expect(all.statements).toBeLessThanOrEqual(4);
});
