/**
 * Compiled execution (src/api/compiled-execution.ts) answers exactly as graphql-js does: the same
 * documents run through both on the real schema, against a real registry in PostgreSQL, give the
 * same data and the same errors (message, path, code) — answers, not-found errors, refused fields,
 * bad variables. Documents in the corners where graphql-jit differs (interfaces, input-object and
 * enum variables, directives, introspection, mutations) are not compiled, and still answered right.
 */
import 'reflect-metadata';
import { execute, GraphQLSchema, parse } from 'graphql';
import { compilable, documentExecutor } from '../src/api/compiled-execution';
import { ApiContext } from '../src/api/context';
import { createLoaders } from '../src/api/loaders';
import { buildApiSchema } from '../src/api/schema';
import { Principal } from '../src/api/auth';
import { createPrisma, PrismaClient } from '../src/store/client';
import { namedRoots } from '../src/store/data-roots';
import { migrate } from '../src/store/migrate';
import { ScratchDatabase } from '../src/store/scratch';
import { createTestDatabase } from './helpers/database';

let database: ScratchDatabase;
let prisma: PrismaClient;
let schema: GraphQLSchema;
const ids: Record<string, string> = {};

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  prisma = createPrisma(database.url);
  schema = await buildApiSchema();
  const model = async (name: string, kind: 'BASE' | 'FINETUNE' | 'MERGE', parents: string[]) => {
    const checkpoint = await prisma.checkpoint.create({ data: { uri: `file:///${name}`, sha256: 'a', bytes: 1n, dtype: 'F32', parameterCount: 1n, tensorCount: 1 } });
    const created = await prisma.model.create({ data: { name, kind, architecture: 'mlp', checkpointId: checkpoint.id, tags: ['t'] } });
    for (const parent of parents) await prisma.lineageEdge.create({ data: { parentId: ids[parent], childId: created.id, relation: kind === 'MERGE' ? 'merge' : 'finetune' } });
    ids[name] = created.id;
  };
  await model('base', 'BASE', []);
  await model('ft-a', 'FINETUNE', ['base']);
  await model('ft-b', 'FINETUNE', ['base']);
  await model('merged', 'MERGE', ['ft-a', 'ft-b']);
});

afterAll(async () => {
  await prisma?.$disconnect();
  await database?.drop();
});

const viewer: Principal = { tokenId: null, name: 'reader', role: 'VIEWER', expiresAt: null };
const contextFor = (who: Principal): ApiContext => ({ prisma, viewer: who, configuredRoots: namedRoots([]), maxActiveJobsPerToken: 20, loaders: createLoaders(prisma), startedAt: performance.now() });

/** Data and errors as a client receives them (errors as JSON: message, locations, path, extensions' code). */
function received(result: { data?: unknown; errors?: readonly { message: string; path?: readonly (string | number)[]; extensions?: Record<string, unknown> }[] }) {
  return { data: result.data ?? null, errors: (result.errors ?? []).map((e) => ({ message: e.message, path: e.path ?? null, code: e.extensions?.code ?? null })) };
}

async function both(query: string, variables?: Record<string, unknown>, who: Principal = viewer) {
  const document = parse(query);
  const compiled = await documentExecutor(schema)(document, undefined, variables, contextFor(who));
  const interpreted = await execute({ schema, document, variableValues: variables, contextValue: contextFor(who) });
  return { compiled: received(compiled), interpreted: received(interpreted) };
}

const compiles = (query: string) => {
  const document = parse(query);
  const operation = document.definitions.find((d) => d.kind === 'OperationDefinition');
  return compilable(schema, document, operation as never);
};

it('answers lineage, model and list queries exactly as graphql-js, data and errors alike', async () => {
  const cases: Array<[string, Record<string, unknown>?]> = [
    ['query($id: ID!) { model(id: $id) { id name kind tags ancestors(depth: 10) { id name kind depth } descendants { name depth } } }', { id: ids.merged }],
    ['query($id: ID!) { lineage(baseId: $id) { nodes { id name kind depth } edges { parentId childId relation weight } } }', { id: ids.base }],
    ['query($id: ID!, $d: Int) { model(id: $id) { ancestors(depth: $d) { name } } }', { id: ids.merged }],
    ['query($id: ID!, $d: Int) { model(id: $id) { ancestors(depth: $d) { name } } }', { id: ids.merged, d: 1 }],
    ['query($id: ID!) { model(id: $id) { name parents { relation weight model { name } } children { relation model { name kind } } checkpoint { uri tensorCount dtype } } }', { id: ids['ft-a'] }],
    ['{ models(first: 2, orderBy: { field: NAME }) { totalCount edges { cursor node { name kind } } pageInfo { hasNextPage endCursor } } }'],
    ['query($after: String) { models(first: 2, after: $after, filter: { kind: FINETUNE, nameContains: "FT" }) { totalCount edges { node { name } } } }'],
    // Errors: a model that does not exist, a depth out of range, an id that is not one.
    ['query($id: ID!) { model(id: $id) { name } }', { id: '00000000-0000-4000-a000-000000000000' }],
    ['query($id: ID!) { model(id: $id) { ancestors(depth: 0) { name } } }', { id: ids.merged }],
    ['query($id: ID!) { lineage(baseId: $id) { nodes { name } } }', { id: 'not-a-uuid' }],
    // Variables graphql-js refuses, in its words.
    ['query($id: ID!) { model(id: $id) { name } }', {}],
    ['query($id: ID!) { model(id: $id) { name } }', { id: { nested: true } }],
    ['query($id: ID!, $d: Int) { model(id: $id) { ancestors(depth: $d) { name } } }', { id: ids.merged, d: 2 ** 40 }],
    // A field a viewer may not read.
    ['{ tokens { name } }'],
  ];
  for (const [query, variables] of cases) {
    const { compiled, interpreted } = await both(query, variables);
    expect({ query, variables, ...compiled }).toEqual({ query, variables, ...interpreted });
  }
  // The cases are compiled ones (the comparison above would prove nothing of graphql-jit otherwise).
  for (const [query] of cases) expect({ query, compiled: compiles(query) }).toEqual({ query, compiled: true });
  // And they answer something: the lineage of the merge, the refusal of the viewer.
  const { compiled } = await both(cases[0][0], cases[0][1]);
  expect(compiled.data).toMatchObject({ model: { name: 'merged', ancestors: [{ name: 'ft-a', depth: 1 }, { name: 'ft-b', depth: 1 }, { name: 'base', depth: 2 }] } });
  expect((await both('{ tokens { name } }')).compiled.errors[0].code).toBe('FORBIDDEN');
});

it('leaves to graphql-js the documents graphql-jit would answer differently, and answers them right', async () => {
  const interpretedOnly: Array<[string, Record<string, unknown>?]> = [
    // An interface (type-graphql resolves the type asynchronously).
    ['query($id: ID!) { node(id: $id) { __typename id ... on Model { name } } }', { id: ids.base }],
    // An enum variable (stored values differ from the names) and an input object with a non-null default.
    ['query($k: ModelKind) { models(filter: { kind: $k }) { totalCount } }', { k: 'FINETUNE' }],
    ['mutation($i: StartAnalysisInput!) { startAnalysis(input: $i) { analysis { id } } }', { i: { modelId: ids['ft-a'], taskId: ids['ft-b'], estimator: 'FAST' } }],
    // Directives and introspection.
    ['query($id: ID!, $full: Boolean!) { model(id: $id) { name tags @include(if: $full) } }', { id: ids.base, full: false }],
    ['{ __type(name: "Model") { name } }'],
  ];
  for (const [query] of interpretedOnly) expect({ query, compiled: compiles(query) }).toEqual({ query, compiled: false });
  for (const [query, variables] of interpretedOnly) {
    const { compiled, interpreted } = await both(query, variables);
    expect({ query, ...compiled }).toEqual({ query, ...interpreted });
  }
  expect((await both(interpretedOnly[0][0], interpretedOnly[0][1])).compiled.data).toEqual({ node: { __typename: 'Model', id: ids.base, name: 'base' } });
  expect((await both(interpretedOnly[1][0], interpretedOnly[1][1])).compiled.data).toEqual({ models: { totalCount: 2 } });
  expect((await both(interpretedOnly[2][0], interpretedOnly[2][1], { ...viewer, role: 'OPERATOR' })).compiled.errors[0].message).toMatch(/Value "FAST" does not exist in "Estimator" enum/);
});
