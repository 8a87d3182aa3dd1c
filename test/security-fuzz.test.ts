/**
 * A fuzz of the API's mutations: random mutations of the schema with random argument values
 * (strings, ids, numbers, JSON and paths chosen to hit edge cases, and the ids of real rows), sent
 * as an admin over HTTP to a real server on a real PostgreSQL. No answer may be an internal error,
 * and a refused mutation must leave every table as it was. The seed is in the test's name, so a
 * failure can be replayed.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GraphQLArgument, GraphQLInputType, GraphQLNamedType, isEnumType, isInputObjectType, isListType, isNonNullType, isScalarType, GraphQLSchema } from 'graphql';
import { ApiServer, startApiServer } from '../src/api/server';
import { buildApiSchema } from '../src/api/schema';
import { namedRoots } from '../src/store/data-roots';
import { saveTaskData } from '../src/engine/data/task-data';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { graphqlClient } from './helpers/graphql';
import { startTestPlatform, TestPlatform } from './helpers/platform';

const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 400);

/** mulberry32: a small seeded generator, so a run can be repeated exactly. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T,>(items: readonly T[]): T => items[int(items.length)];
  return { next, int, pick };
}

let platform: TestPlatform;
let server: ApiServer;
let schema: GraphQLSchema;
const realIds: string[] = [];

const TABLES = ['models', 'checkpoints', 'lineage_edges', 'tasks', 'merges', 'merge_inputs', 'importance_analyses', 'evaluations', 'job_events', 'api_tokens', 'data_roots'];
async function rowCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) counts[table] = Number((await platform.prisma.$queryRawUnsafe<Array<{ n: bigint }>>(`SELECT count(*) AS n FROM "${table}"`))[0].n);
  return counts;
}

beforeAll(async () => {
  platform = await startTestPlatform();
  schema = await buildApiSchema();
  writeSyntheticFamily(join(platform.root, 'models'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 2, seed: 5 });
  const split = { inputs: new Uint8Array(4 * 4), exampleShape: [2, 2], labels: Int32Array.from([0, 1, 2, 1]), count: 4 };
  saveTaskData(join(platform.root, 'task.safetensors'), { name: 'digits', classes: 3, description: 'tiny', seed: 1 }, { probe: split, test: split });
  mkdirSync(join(platform.root, '..x'), { recursive: true });
  const base = await platform.gql<{ registerModel: { model: { id: string } } }>('mutation($p: String!) { registerModel(input: { name: "base", kind: BASE, path: $p }) { model { id } } }', { p: join(platform.root, 'models/base') });
  realIds.push(base.data!.registerModel.model.id);
  const ft = await platform.gql<{ registerModel: { model: { id: string } } }>('mutation($p: String!, $b: ID!) { registerModel(input: { name: "ft", kind: FINETUNE, path: $p, parentIds: [$b] }) { model { id } } }', { p: join(platform.root, 'models/finetune-1'), b: realIds[0] });
  realIds.push(ft.data!.registerModel.model.id);
  const merge = await platform.gql<{ startMerge: { merge: { id: string } } }>('mutation($m: ID!) { startMerge(input: { method: "linear", models: [{ modelId: $m, parameters: { weight: 1 } }] }) { merge { id } } }', { m: realIds[1] });
  realIds.push(merge.data!.startMerge.merge.id);
  server = await startApiServer({
    prisma: platform.prisma,
    dataRoots: namedRoots([platform.root]),
    databaseUrl: platform.databaseUrl,
    queue: platform.queue,
    security: { mutationRate: { burst: 1e9, perMinute: 1e9 }, maxActiveJobsPerToken: 1e9 },
  });
});

afterAll(async () => {
  await server?.stop();
  await platform?.stop();
});

it(`never answers a random mutation with an internal error, and a refused one leaves no row (seed ${SEED}, ${REQUESTS} requests)`, async () => {
  const random = generator(SEED);
  const root = platform.root;
  const strings = () => [
    '', ' ', 'a', 'x'.repeat(300), 'name\u0000with\u0001controls', 'ünïcødé ✓', '../../etc/passwd', '/etc/passwd', root, join(root, 'models/base'), join(root, 'models/finetune-2'),
    join(root, 'task.safetensors'), join(root, '..x'), `data://${namedRoots([root])[0].name}/models/base`, 'data://nope/x', 'data://', '30d', '0m', '1e400', 'NaN', '{"a":1}',
    'linear', 'ties', 'dare_ties', 'apl', 'task_arithmetic', 'no_such_method', 'float32', 'bfloat16', 'int8', 'row', 'layer', 'exact', 'gradient', 'fuzz-token', 'admin',
  ];
  const ids = () => [...realIds, '00000000-0000-0000-0000-000000000000', 'not-a-uuid', '', '12345', 'DROP TABLE models', realIds[0].toUpperCase(), `${realIds[0]}x`];
  const json = (depth: number): unknown => {
    const kind = random.int(depth > 2 ? 5 : 8);
    if (kind === 0) return random.pick([0, 1, -1, 0.5, 1e308, -1e308, 2 ** 53 + 2, 1e-320]);
    if (kind === 1) return random.pick(strings());
    if (kind === 2) return random.pick([true, false, null]);
    if (kind === 3) return {};
    if (kind === 4) return [];
    if (kind < 7) return Object.fromEntries(Array.from({ length: 1 + random.int(3) }, () => [random.pick(['weight', 'density', 'epsilon', 'lambda', 'normalize', 'level', 'estimator', 'keep_rate', 'seed', 'x']), json(depth + 1)]));
    return Array.from({ length: random.int(3) }, () => json(depth + 1));
  };
  const value = (type: GraphQLInputType, depth = 0): unknown => {
    if (isNonNullType(type)) return random.next() < 0.05 ? null : value(type.ofType, depth);
    if (random.next() < 0.1) return null;
    if (isListType(type)) return Array.from({ length: random.int(depth > 1 ? 2 : 4) }, () => value(type.ofType, depth + 1));
    const named = type as GraphQLNamedType;
    if (isEnumType(named)) return random.next() < 0.05 ? 'NOT_A_VALUE' : random.pick(named.getValues()).name;
    if (isInputObjectType(named)) return Object.fromEntries(Object.values(named.getFields()).filter(() => random.next() < 0.9).map((f) => [f.name, value(f.type, depth + 1)]));
    if (isScalarType(named)) {
      switch (named.name) {
        case 'ID':
          return random.pick(ids());
        case 'String':
          return random.pick(strings());
        case 'Int':
          return random.pick([0, 1, -1, 7, 500, 501, 2 ** 31 - 1, -(2 ** 31)]);
        case 'Float':
          return random.pick([0, -0, 0.5, 1, -1, 1e308, 1e-308, 123456789.123]);
        case 'Boolean':
          return random.next() < 0.5;
        default:
          return json(depth);
      }
    }
    return null;
  };
  const mutations = Object.values(schema.getMutationType()!.getFields());
  const gql = graphqlClient(server.url, platform.token);
  let before = await rowCounts();
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < REQUESTS; i++) {
    const field = random.pick(mutations);
    const args = field.args.filter((a: GraphQLArgument) => isNonNullType(a.type) || random.next() < 0.7);
    const variables = Object.fromEntries(args.map((a) => [a.name, value(a.type)]));
    const query = `mutation${args.length ? `(${args.map((a) => `$${a.name}: ${a.type.toString()}`).join(', ')})` : ''} { ${field.name}${args.length ? `(${args.map((a) => `${a.name}: $${a.name}`).join(', ')})` : ''} { __typename } }`;
    const result = await gql<Record<string, unknown>>(query, variables);
    const codes = (result.errors ?? []).map((e) => e.extensions?.code ?? 'NO_CODE');
    const request = JSON.stringify({ query, variables });
    expect({ request, codes: codes.filter((c) => c === 'INTERNAL_SERVER_ERROR' || c === 'NO_CODE'), messages: codes.includes('INTERNAL_SERVER_ERROR') ? result.errors!.map((e) => e.message) : [] }).toEqual({ request, codes: [], messages: [] });
    const after = await rowCounts();
    if (result.errors?.length) expect({ request, after }).toEqual({ request, after: before });
    outcomes[`${field.name}:${result.errors?.length ? codes[0] : 'ok'}`] = (outcomes[`${field.name}:${result.errors?.length ? codes[0] : 'ok'}`] ?? 0) + 1;
    before = after;
  }
  if (process.env.FUZZ_REPORT) process.stdout.write(`${JSON.stringify(outcomes)}\n`);
  // The fuzz reached every mutation, and its answers were not all one kind of refusal.
  for (const field of mutations) expect(Object.keys(outcomes).some((k) => k.startsWith(`${field.name}:`))).toBe(true);
  expect(new Set(Object.keys(outcomes).map((k) => k.split(':')[1])).size).toBeGreaterThan(3);
});
