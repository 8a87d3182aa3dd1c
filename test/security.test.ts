/**
 * The security rules, each against a real API server on a real PostgreSQL, with real HTTP requests
 * and real graphql-ws WebSockets: tokens and roles (a role × operation matrix), subscriptions
 * checked at connection_init and per subscription (a revoked token's stream is closed), query
 * limits, rate limits, size limits, the Origin policy, and what non-admins see of server paths.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ApiServer, ApiServerOptions, startApiServer } from '../src/api/server';
import { namedRoots } from '../src/store/data-roots';
import { Role } from '../src/store/generated/enums';
import { createToken, revokeToken } from '../src/store/tokens';
import { saveTaskData } from '../src/engine/data/task-data';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { graphqlClient, GqlResult, waitFor } from './helpers/graphql';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { testToken } from './helpers/tokens';

let platform: TestPlatform;
const tokens: Record<string, string> = {};
const extraServers: ApiServer[] = [];
const ids: { base: string; finetunes: string[]; task: string } = { base: '', finetunes: [], task: '' };

const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id createdBy } } }';

async function serverWith(options: Partial<ApiServerOptions>): Promise<ApiServer> {
  const server = await startApiServer({ prisma: platform.prisma, dataRoots: namedRoots([platform.root]), databaseUrl: platform.databaseUrl, queue: platform.queue, ...options });
  extraServers.push(server);
  return server;
}

/** A POST with whatever headers and body a test needs; returns the status, headers and parsed JSON. */
async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await response.text();
  let json: GqlResult<Record<string, unknown>> | undefined;
  try {
    json = JSON.parse(text) as GqlResult<Record<string, unknown>>;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

beforeAll(async () => {
  platform = await startTestPlatform();
  writeSyntheticFamily(join(platform.root, 'models'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 2, seed: 3 });
  const split = { inputs: new Uint8Array(4 * 4), exampleShape: [2, 2], labels: Int32Array.from([0, 1, 2, 1]), count: 4 };
  saveTaskData(join(platform.root, 'task.safetensors'), { name: 'digits', classes: 3, description: 'tiny', seed: 1 }, { probe: split, test: split });
  for (const role of ['VIEWER', 'OPERATOR', 'ADMIN'] as Role[]) tokens[role] = await testToken(platform.prisma, role, `the-${role.toLowerCase()}`);
  tokens.OPERATOR_B = await testToken(platform.prisma, 'OPERATOR', 'other-operator');
  tokens.EXPIRED = (await createToken(platform.prisma, { name: 'expired', role: 'ADMIN', expiresAt: new Date(Date.now() + 1000) })).token;
  tokens.REVOKED = await testToken(platform.prisma, 'ADMIN', 'revoked');
  await revokeToken(platform.prisma, 'revoked');
  const admin = graphqlClient(platform.server.url, tokens.ADMIN);
  const base = await admin<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(platform.root, 'models/base') } });
  ids.base = base.data!.registerModel.model.id;
  for (const f of [1, 2]) {
    const ft = await admin<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: `ft-${f}`, kind: 'FINETUNE', path: `data://${namedRoots([platform.root])[0].name}/models/finetune-${f}`, parentIds: [ids.base] } });
    expect(ft.errors).toBeUndefined();
    ids.finetunes.push(ft.data!.registerModel.model.id);
  }
  const task = await admin<{ registerTask: { task: { id: string } } }>('mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id } } }', { input: { name: 'digits', path: join(platform.root, 'task.safetensors') } });
  ids.task = task.data!.registerTask.task.id;
  // Let the one-second token expire.
  await new Promise((r) => setTimeout(r, 1100));
});

afterAll(async () => {
  for (const server of extraServers) await server.stop();
  await platform?.stop();
});

describe('tokens and roles', () => {
  type Caller = 'none' | 'garbage' | 'EXPIRED' | 'REVOKED' | Role;
  const CALLERS: Caller[] = ['none', 'garbage', 'EXPIRED', 'REVOKED', 'VIEWER', 'OPERATOR', 'ADMIN'];
  const missing = '00000000-0000-4000-8000-000000000000';
  /** Every operation, the least role it needs, and a request that changes nothing when allowed (unknown ids, bad paths). */
  const OPERATIONS: Array<{ name: string; needs: Role; query: string; variables?: () => Record<string, unknown> }> = [
    { name: 'models', needs: 'VIEWER', query: '{ models { nodes { id } } }' },
    { name: 'model', needs: 'VIEWER', query: `{ model(id: "${missing}") { id } }` },
    { name: 'lineage', needs: 'VIEWER', query: '{ lineage(baseId: "ID") { nodes { id } } }', variables: () => ({}) },
    { name: 'tasks', needs: 'VIEWER', query: '{ tasks { nodes { id } } }' },
    { name: 'merges', needs: 'VIEWER', query: '{ merges { nodes { id } } }' },
    { name: 'merge', needs: 'VIEWER', query: `{ merge(id: "${missing}") { id } }` },
    { name: 'analyses', needs: 'VIEWER', query: '{ analyses { nodes { id } } }' },
    { name: 'analysis', needs: 'VIEWER', query: `{ analysis(id: "${missing}") { id } }` },
    { name: 'methods', needs: 'VIEWER', query: '{ methods { name } }' },
    { name: 'viewer', needs: 'VIEWER', query: '{ viewer { name role } }' },
    { name: 'dataRoots', needs: 'VIEWER', query: '{ dataRoots { name path } }' },
    { name: 'workers', needs: 'VIEWER', query: '{ workers(all: true) { id name alive currentJob } }' },
    { name: 'startMerge', needs: 'OPERATOR', query: `mutation { startMerge(input: { method: "linear", models: [{ modelId: "${missing}" }] }) { merge { id } } }` },
    { name: 'startAnalysis', needs: 'OPERATOR', query: `mutation { startAnalysis(input: { modelId: "${missing}", taskId: "${missing}" }) { analysis { id } } }` },
    { name: 'cancelJob', needs: 'OPERATOR', query: `mutation { cancelJob(id: "${missing}") { id } }` },
    { name: 'retryJob', needs: 'OPERATOR', query: `mutation { retryJob(id: "${missing}") { id } }` },
    { name: 'updateModel', needs: 'ADMIN', query: `mutation { updateModel(id: "${missing}", input: { description: "x" }) { model { id } } }` },
    { name: 'archiveModel', needs: 'ADMIN', query: `mutation { archiveModel(id: "${missing}") { model { id } } }` },
    { name: 'deleteModel', needs: 'ADMIN', query: `mutation { deleteModel(id: "${missing}") { id } }` },
    { name: 'registerTask', needs: 'OPERATOR', query: 'mutation { registerTask(input: { name: "t", path: "/nowhere/t.safetensors" }) { task { id } } }' },
    { name: 'registerModel', needs: 'ADMIN', query: 'mutation { registerModel(input: { name: "m", kind: BASE, path: "/nowhere" }) { model { id } } }' },
    { name: 'tokens', needs: 'ADMIN', query: '{ tokens { name } }' },
    { name: 'createToken', needs: 'ADMIN', query: 'mutation { createToken(input: { name: "bad name!", role: VIEWER }) { token } }' },
    { name: 'revokeToken', needs: 'ADMIN', query: 'mutation { revokeToken(name: "no-such-token") { apiToken { name } } }' },
    { name: 'addDataRoot', needs: 'ADMIN', query: 'mutation { addDataRoot(name: "x", path: "/nowhere") { dataRoot { name } } }' },
    { name: 'removeDataRoot', needs: 'ADMIN', query: 'mutation { removeDataRoot(name: "no-such-root") { dataRoot { name } } }' },
  ];
  const RANK: Record<Role, number> = { VIEWER: 0, OPERATOR: 1, ADMIN: 2 };
  const header = (caller: Caller): Record<string, string> => (caller === 'none' ? {} : { authorization: `Bearer ${caller === 'garbage' ? 'aplm_not-a-real-token' : tokens[caller]}` });

  it.each(OPERATIONS.map((op) => [op.name, op] as const))('%s: refused below its role, and without a valid token', async (_name, op) => {
    const before = await Promise.all([platform.prisma.model.count(), platform.prisma.task.count(), platform.prisma.merge.count(), platform.prisma.apiToken.count(), platform.prisma.dataRoot.count()]);
    for (const caller of CALLERS) {
      const { status, json, headers } = await post(platform.server.url, JSON.stringify({ query: op.query.replace('"ID"', `"${ids.base}"`) }), header(caller));
      const code = json?.errors?.[0]?.extensions.code;
      if (caller === 'none' || caller === 'garbage' || caller === 'EXPIRED' || caller === 'REVOKED') {
        expect({ caller, status, code }).toEqual({ caller, status: 401, code: 'UNAUTHENTICATED' });
        expect(headers.get('www-authenticate')).toMatch(/^Bearer/);
        if (caller === 'EXPIRED') expect(json!.errors![0].message).toMatch(/token "expired" expired at/);
        if (caller === 'REVOKED') expect(json!.errors![0].message).toMatch(/token "revoked" was revoked/);
      } else if (RANK[caller] < RANK[op.needs]) {
        expect({ caller, code }).toEqual({ caller, code: 'FORBIDDEN' });
        expect(json!.errors![0].message).toMatch(new RegExp(`needs the ${op.needs.toLowerCase()} role`));
        expect(json!.data ?? null).toBeNull();
      } else {
        expect({ caller, code: ['UNAUTHENTICATED', 'FORBIDDEN', 'INTERNAL_SERVER_ERROR'].includes(String(code)) ? code : 'allowed' }).toEqual({ caller, code: 'allowed' });
      }
    }
    const after = await Promise.all([platform.prisma.model.count(), platform.prisma.task.count(), platform.prisma.merge.count(), platform.prisma.apiToken.count(), platform.prisma.dataRoot.count()]);
    expect(after).toEqual(before);
  });

  it('tokens are stored as a hash with a visible prefix, shown once, and listed with their use', async () => {
    const admin = graphqlClient(platform.server.url, tokens.ADMIN);
    const created = await admin<{ createToken: { token: string; apiToken: { name: string; role: string; prefix: string; expiresAt: string } } }>(
      'mutation { createToken(input: { name: "ci-bot", role: OPERATOR, expiresIn: "30d" }) { token apiToken { name role prefix expiresAt } } }',
    );
    const { token, apiToken } = created.data!.createToken;
    expect(token).toMatch(/^aplm_[A-Za-z0-9_-]{43}$/); // 32 random bytes
    expect(token.startsWith(apiToken.prefix)).toBe(true);
    expect(new Date(apiToken.expiresAt).getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const row = await platform.prisma.apiToken.findUniqueOrThrow({ where: { name: 'ci-bot' } });
    expect(JSON.stringify(row)).not.toContain(token);
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    const me = await graphqlClient(platform.server.url, token)<{ viewer: { name: string; role: string } }>('{ viewer { name role } }');
    expect(me.data!.viewer).toEqual({ name: 'ci-bot', role: 'OPERATOR' });
    const listed = await admin<{ tokens: Array<{ name: string; lastUsedAt: string | null; createdBy: string }> }>('{ tokens { name lastUsedAt createdBy } }');
    const entry = listed.data!.tokens.find((t) => t.name === 'ci-bot')!;
    expect(entry.lastUsedAt).not.toBeNull();
    expect(entry.createdBy).toBe('the-admin');
    expect(JSON.stringify(listed)).not.toContain(token);
    const duplicate = await admin('mutation { createToken(input: { name: "ci-bot", role: VIEWER }) { token } }');
    expect(duplicate.errors![0].extensions.code).toBe('CONFLICT');
  });

  it('records which token created every model, task, merge and analysis, and operators cancel only their own jobs', async () => {
    const listed = await graphqlClient(platform.server.url, tokens.VIEWER)<{ models: { nodes: Array<{ name: string; createdBy: string }> }; tasks: { nodes: Array<{ createdBy: string }> } }>('{ models { nodes { name createdBy } } tasks { nodes { createdBy } } }');
    expect(listed.data!.models.nodes.map((m) => m.createdBy)).toEqual(['the-admin', 'the-admin', 'the-admin']);
    expect(listed.data!.tasks.nodes[0].createdBy).toBe('the-admin');
    const operatorA = graphqlClient(platform.server.url, tokens.OPERATOR);
    const operatorB = graphqlClient(platform.server.url, tokens.OPERATOR_B);
    const START = `mutation($ids: [MergeModelInput!]!) { startMerge(input: { method: "linear", models: $ids }) { merge { id createdBy } } }`;
    const models = ids.finetunes.map((modelId) => ({ modelId, parameters: { weight: 1 } }));
    const started = await operatorA<{ startMerge: { merge: { id: string; createdBy: string } } }>(START, { ids: models });
    expect(started.errors).toBeUndefined();
    expect(started.data!.startMerge.merge.createdBy).toBe('the-operator');
    const analysis = await operatorA<{ startAnalysis: { analysis: { id: string; createdBy: string } } }>(`mutation { startAnalysis(input: { modelId: "${ids.finetunes[0]}", taskId: "${ids.task}", baseModelId: "${ids.base}" }) { analysis { id createdBy } } }`);
    // The synthetic family has no heads: refused before anything is written, and not for want of rights.
    expect(analysis.errors![0].extensions.code).toBe('BAD_USER_INPUT');
    const CANCEL = 'mutation($id: ID!) { cancelJob(id: $id) { status } }';
    const byOther = await operatorB(CANCEL, { id: started.data!.startMerge.merge.id });
    expect(byOther.errors![0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect(byOther.errors![0].message).toMatch(/started by token "the-operator"; only its owner or an admin may cancel it/);
    expect((await operatorA(CANCEL, { id: started.data!.startMerge.merge.id })).errors).toBeUndefined();
    const second = await operatorA<{ startMerge: { merge: { id: string } } }>(START, { ids: models });
    expect((await graphqlClient(platform.server.url, tokens.ADMIN)(CANCEL, { id: second.data!.startMerge.merge.id })).errors).toBeUndefined();
  });

  it('--allow-anonymous-read gives requests without a token viewer rights and nothing more', async () => {
    const server = await serverWith({ security: { allowAnonymousRead: true } });
    const anonymous = graphqlClient(server.url);
    const read = await anonymous<{ models: { nodes: unknown[] }; viewer: { name: string | null; role: string } }>('{ models { nodes { id } } viewer { name role } }');
    expect(read.errors).toBeUndefined();
    expect(read.data!.viewer).toEqual({ name: null, role: 'VIEWER' });
    const write = await anonymous(`mutation { cancelJob(id: "${randomUUID()}") { id } }`);
    expect(write.errors![0].extensions.code).toBe('FORBIDDEN');
    // A bad token is still refused: anonymous reading is for requests with no token at all.
    const bad = await post(server.url, JSON.stringify({ query: '{ viewer { role } }' }), { authorization: 'Bearer aplm_nope' });
    expect(bad.status).toBe(401);
  });
});

describe('subscriptions', () => {
  const PROGRESS = 'subscription($id: ID!) { jobProgress(jobId: $id) { id status } }';

  /** Opens a graphql-ws connection and reports how the server closed it. */
  function connect(url: string, authorization?: string) {
    let closed!: (e: { code: number; reason: string }) => void;
    const closedWith = new Promise<{ code: number; reason: string }>((r) => (closed = r));
    const client = createClient({
      url: url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: false,
      connectionParams: authorization ? { authorization } : undefined,
      on: { closed: (event) => closed(event as { code: number; reason: string }) },
      onNonLazyError: () => undefined,
    });
    return { client, closedWith };
  }

  it('closes a connection without a valid token with 4401 at connection_init', async () => {
    for (const authorization of [undefined, 'Bearer aplm_unknown', `Bearer ${tokens.REVOKED}`, `Bearer ${tokens.EXPIRED}`]) {
      const { client, closedWith } = connect(platform.server.url, authorization);
      const closed = await closedWith;
      expect(closed.code).toBe(4401);
      expect(closed.reason).toMatch(/authentication required/);
      await client.dispose();
    }
  });

  it('streams to a viewer, and closes the stream when its token is revoked', async () => {
    const viewer = await testToken(platform.prisma, 'VIEWER', 'soon-revoked');
    const merge = await platform.prisma.merge.create({ data: { method: 'linear', parameters: {} } });
    await platform.prisma.jobEvent.create({ data: { jobKind: 'merge', jobId: merge.id, phase: 'status', done: 0, total: 0, message: 'queued', status: 'QUEUED' } });
    const { client, closedWith } = connect(platform.server.url, `Bearer ${viewer}`);
    const seen: unknown[] = [];
    const stream = new Promise<void>((resolve, reject) => client.subscribe({ query: PROGRESS, variables: { id: merge.id } }, { next: (m) => seen.push(m.data), error: reject, complete: resolve }));
    stream.catch(() => undefined);
    await waitFor(() => seen.length === 1, 'the replayed event');
    await revokeToken(platform.prisma, 'soon-revoked');
    const { code, reason } = await closedWith;
    expect({ code, reason }).toEqual({ code: 4401, reason: 'token revoked' });
    await client.dispose();
  });

  it('checks the token again for each subscription, and applies the query limits and a subscription count limit', async () => {
    const server = await serverWith({ security: { maxSubscriptionsPerConnection: 2 } });
    const merge = await platform.prisma.merge.create({ data: { method: 'linear', parameters: {} } });
    const errors: string[] = [];
    const { client } = connect(server.url, `Bearer ${tokens.VIEWER}`);
    const open = () => client.subscribe({ query: PROGRESS, variables: { id: merge.id } }, { next: () => undefined, error: (e) => errors.push(JSON.stringify(e)), complete: () => undefined });
    open();
    open();
    open();
    await waitFor(() => errors.length === 1, 'the third subscription to be refused');
    expect(errors[0]).toMatch(/TOO_MANY_SUBSCRIPTIONS/);
    const deep = `subscription { jobProgress(jobId: "${merge.id}") { id ${Array.from({ length: 40 }, (_, i) => `a${i}: id`).join(' ')} } }`;
    const fresh = connect(server.url, `Bearer ${tokens.VIEWER}`).client;
    fresh.subscribe({ query: deep }, { next: () => undefined, error: (e) => errors.push(JSON.stringify(e)), complete: () => undefined });
    await waitFor(() => errors.length === 2, 'the aliased subscription to be refused');
    expect(errors[1]).toMatch(/TOO_MANY_ALIASES/);
    await client.dispose();
    await fresh.dispose();
  });

  it('closes a connection when its token expires, and hides server paths in what it streams to non-admins', async () => {
    const { token } = await createToken(platform.prisma, { name: 'short-lived', role: 'VIEWER', expiresAt: new Date(Date.now() + 1500) });
    const merge = await platform.prisma.merge.create({ data: { method: 'linear', parameters: {} } });
    await platform.prisma.jobEvent.create({ data: { jobKind: 'merge', jobId: merge.id, phase: 'status', done: 0, total: 0, message: `writing ${platform.root}/outputs/y/model.safetensors`, status: 'QUEUED' } });
    const { client, closedWith } = connect(platform.server.url, `Bearer ${token}`);
    const messages: string[] = [];
    client.subscribe<{ jobProgress: { message: string } }>({ query: 'subscription($id: ID!) { jobProgress(jobId: $id) { message } }', variables: { id: merge.id } }, { next: (m) => messages.push(m.data!.jobProgress.message), error: () => undefined, complete: () => undefined });
    await waitFor(() => messages.length === 1, 'the replayed event');
    expect(messages[0]).toBe(`writing data://${namedRoots([platform.root])[0].name}/outputs/y/model.safetensors`);
    const { code, reason } = await closedWith;
    expect({ code, reason }).toEqual({ code: 4401, reason: 'token expired' });
    await client.dispose();
  });

  it('refuses WebSocket messages over the size limit', async () => {
    const server = await serverWith({ security: { maxWebSocketMessageBytes: 2048 } });
    const { client, closedWith } = connect(server.url, `Bearer ${tokens.VIEWER}`);
    client.subscribe({ query: `subscription { jobProgress(jobId: "${randomUUID()}") { id } } # ${'x'.repeat(4096)}` }, { next: () => undefined, error: () => undefined, complete: () => undefined });
    expect((await closedWith).code).toBe(1009);
    await client.dispose();
  });
});

describe('limits', () => {
  const viewer = () => graphqlClient(platform.server.url, tokens.VIEWER);

  it("refuses the alternating children/parents query and 10,000 aliases before executing them", async () => {
    // The 242-byte query that took 11.6 s and 1.75 MB.
    const hop = (n: number): string => (n === 0 ? 'name' : `${n % 2 ? 'children' : 'parents'} { model { ${hop(n - 1)} } }`);
    const nested = `{ model(id: "${ids.base}") { ${hop(11)} } }`;
    const deep = await viewer()(nested);
    expect(deep.errors![0].extensions).toMatchObject({ code: 'QUERY_TOO_DEEP', limit: 10 });
    expect(deep.data).toBeUndefined();
    const aliases = `{ ${Array.from({ length: 10_000 }, (_, i) => `a${i}: methods { name }`).join(' ')} }`;
    const many = await viewer()(aliases);
    expect(many.errors![0].extensions).toMatchObject({ code: 'QUERY_TOO_LARGE', limit: 4000 });
    const some = await viewer()(`{ ${Array.from({ length: 31 }, (_, i) => `a${i}: viewer { role }`).join(' ')} }`);
    expect(some.errors![0].extensions).toMatchObject({ code: 'TOO_MANY_ALIASES', limit: 30 });
    const directives = await viewer()(`{ viewer { role ${'@include(if: true) '.repeat(21)} } }`);
    expect(directives.errors![0].extensions.code).toBe('TOO_MANY_DIRECTIVES');
  });

  it('counts list sizes in the cost, with the variables of each request', async () => {
    const QUERY = 'query($n: Int!) { models(first: $n) { nodes { children { model { children { model { name } } } } } } }';
    const small = await viewer()(QUERY, { n: 2 });
    expect(small.errors).toBeUndefined();
    // The same document again (cached by Apollo) with a larger page: refused for these variables.
    const large = await viewer()(QUERY, { n: 500 });
    expect(large.errors![0].extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 20_000 });
    expect(large.errors![0].message).toMatch(/estimated \d+/);
    // Checks are remembered per document and numbers: the small page is still let through, and a string variable does not matter.
    expect((await viewer()(QUERY, { n: 2 })).errors).toBeUndefined();
    const ID_QUERY = 'query($id: ID!, $n: Int!) { model(id: $id) { children { model { name } } } models(first: $n) { nodes { children { model { children { model { name } } } } } } }';
    for (const id of [ids.base, ids.base.replace(/^./, '0')]) expect((await viewer()(ID_QUERY, { id, n: 500 })).errors![0].extensions.code).toBe('QUERY_TOO_COMPLEX');
  });

  it("lets the README's and a dashboard's queries through", async () => {
    const queries = [
      `{ lineage(baseId: "${ids.base}") { nodes { name kind depth } edges { parentId childId relation weight } } }`,
      '{ models(filter: { kind: MERGE }) { nodes { name checkpoint { sha256 } evaluations { nodes { task { name } split value } } } } }',
      '{ models(first: 50) { nodes { id name kind architecture createdAt createdBy checkpoint { uri sha256 bytes dtype parameterCount tensorCount } parents { relation weight model { id name } } children { relation weight model { id name } } evaluations { nodes { split metric value task { name } } } } pageInfo { hasNextPage endCursor } } }',
      '{ merges(first: 50) { nodes { id method status done total error outputName attempts createdBy inputs { position isBase parameters model { name } } outputModel { name } } } analyses(first: 50) { nodes { id status level estimator model { name } task { name } } } }',
      '{ methods { name prettyName needsBase stochastic globalParameters { name type default description min max choices } modelParameters { name type default } } }',
      '{ __schema { types { name kind fields { name args { name type { name kind ofType { name kind ofType { name kind } } } } type { name kind ofType { name kind ofType { name kind } } } } } } }',
    ];
    for (const query of queries) expect({ query, errors: (await viewer()(query)).errors }).toEqual({ query, errors: undefined });
  });

  it('rate-limits mutations per token, with a burst, then RATE_LIMITED (HTTP 429)', async () => {
    const server = await serverWith({ security: { mutationRate: { burst: 3, perMinute: 1 } } });
    const cancel = JSON.stringify({ query: `mutation { cancelJob(id: "${randomUUID()}") { id } }` });
    for (let i = 0; i < 3; i++) expect((await post(server.url, cancel, { authorization: `Bearer ${tokens.OPERATOR}` })).json!.errors![0].extensions.code).toBe('NOT_FOUND');
    const limited = await post(server.url, cancel, { authorization: `Bearer ${tokens.OPERATOR}` });
    expect(limited.status).toBe(429);
    expect(limited.json!.errors![0].extensions).toMatchObject({ code: 'RATE_LIMITED' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Per token: another token still has its burst; queries are not limited.
    expect((await post(server.url, cancel, { authorization: `Bearer ${tokens.OPERATOR_B}` })).json!.errors![0].extensions.code).toBe('NOT_FOUND');
    expect((await post(server.url, JSON.stringify({ query: '{ viewer { role } }' }), { authorization: `Bearer ${tokens.OPERATOR}` })).status).toBe(200);
  });

  it('limits the queued and running jobs of one token', async () => {
    const server = await serverWith({ security: { maxActiveJobsPerToken: 1 } });
    const token = await testToken(platform.prisma, 'OPERATOR', 'one-job-at-a-time');
    const gql = graphqlClient(server.url, token);
    const START = `mutation($ids: [MergeModelInput!]!) { startMerge(input: { method: "linear", models: $ids }) { merge { id } } }`;
    const models = ids.finetunes.map((modelId) => ({ modelId, parameters: { weight: 1 } }));
    const first = await gql<{ startMerge: { merge: { id: string } } }>(START, { ids: models });
    expect(first.errors).toBeUndefined();
    const before = await platform.prisma.merge.count();
    const second = await gql(START, { ids: models });
    expect(second.errors![0].extensions.code).toBe('RATE_LIMITED');
    expect(second.errors![0].message).toMatch(/already has 1 queued or running job/);
    expect(await platform.prisma.merge.count()).toBe(before);
    await gql('mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: first.data!.startMerge.merge.id });
    expect((await gql(START, { ids: models })).errors).toBeUndefined();
  });

  it('answers oversized and malformed bodies with JSON errors', async () => {
    const server = await serverWith({ security: { maxBodyBytes: 1024 } });
    const big = await post(server.url, JSON.stringify({ query: `{ viewer { role } } # ${'x'.repeat(2000)}` }), { authorization: `Bearer ${tokens.VIEWER}` });
    expect(big.status).toBe(413);
    expect(big.json!.errors![0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    const malformed = await post(server.url, '{"query": "{ viewer { role } }"', { authorization: `Bearer ${tokens.VIEWER}` });
    expect(malformed.status).toBe(400);
    expect(malformed.json!.errors![0]).toEqual({ message: 'request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } });
  });
});

describe('exposure', () => {
  it('enforces the Origin policy on HTTP and on WebSocket upgrades', async () => {
    const auth = { authorization: `Bearer ${tokens.VIEWER}` };
    const query = JSON.stringify({ query: '{ viewer { role } }' });
    const own = new URL(platform.server.url).origin;
    expect((await post(platform.server.url, query, { ...auth, origin: 'http://evil.example' })).status).toBe(403);
    expect((await post(platform.server.url, query, { ...auth, origin: own })).status).toBe(200);
    expect((await post(platform.server.url, query, auth)).status).toBe(200);
    const upgrade = (url: string, origin?: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws', origin ? { origin } : {});
        socket.on('open', () => {
          socket.close();
          resolve(101);
        });
        socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.on('error', () => undefined);
      });
    expect(await upgrade(platform.server.url, 'http://evil.example')).toBe(403);
    expect(await upgrade(platform.server.url, own)).toBe(101);
    expect(await upgrade(platform.server.url)).toBe(101);
    const configured = await serverWith({ security: { allowedOrigins: ['https://dashboard.example'] } });
    expect(await upgrade(configured.url, 'https://dashboard.example')).toBe(101);
    expect((await post(configured.url, query, { ...auth, origin: 'https://dashboard.example' })).status).toBe(200);
  });

  it('never shows non-admins an absolute server path: data, errors and job reports', async () => {
    const rootName = namedRoots([platform.root])[0].name;
    await platform.prisma.merge.create({ data: { method: 'linear', parameters: {}, status: 'FAILED', error: `cannot write ${platform.root}/outputs/x/model.safetensors`, result: { outDir: `file://${platform.root}/outputs/x`, files: [`${platform.root}/outputs/x/model.safetensors`] } } });
    const QUERY = '{ models { nodes { name checkpoint { uri } } } tasks { nodes { dataUri } } merges { nodes { error result } } dataRoots { name path } }';
    for (const role of ['VIEWER', 'OPERATOR'] as Role[]) {
      const seen = await graphqlClient(platform.server.url, tokens[role])<{ models: { nodes: Array<{ name: string; checkpoint: { uri: string } }> }; tasks: { nodes: Array<{ dataUri: string }> } }>(QUERY);
      expect(JSON.stringify(seen)).not.toContain(platform.root);
      expect(seen.data!.models.nodes.find((m) => m.name === 'base')!.checkpoint.uri).toBe(`data://${rootName}/models/base`);
      expect(seen.data!.tasks.nodes[0].dataUri).toBe(`data://${rootName}/task.safetensors`);
      expect(JSON.stringify(seen)).toContain(`cannot write data://${rootName}/outputs/x/model.safetensors`);
    }
    const admin = await graphqlClient(platform.server.url, tokens.ADMIN)<{ tasks: { nodes: Array<{ dataUri: string }> } }>(QUERY);
    expect(admin.data!.tasks.nodes[0].dataUri).toBe(`file://${join(platform.root, 'task.safetensors')}`);
  });

  it('registration is no oracle: a missing path, a forbidden one and a non-task file give non-admins one error', async () => {
    const operator = graphqlClient(platform.server.url, tokens.OPERATOR);
    mkdirSync(join(platform.root, 'notes'), { recursive: true });
    writeFileSync(join(platform.root, 'notes', 'secret.txt'), 'SECRETSECRETSECRET');
    const register = async (path: string) => (await operator('mutation($p: String!) { registerTask(input: { name: "t", path: $p }) { task { id } } }', { p: path })).errors![0];
    const answers = await Promise.all(['/etc/passwd', '/no/such/file.safetensors', join(platform.root, 'notes', 'secret.txt'), join(platform.root, 'nothing-here.safetensors')].map(register));
    for (const answer of answers) {
      expect(answer.extensions.code).toBe('BAD_USER_INPUT');
      expect(answer.message).toMatch(/^no task data at ".*" in the data roots \(data:\/\/[^)]+\)$/);
      expect(answer.message).not.toContain('SECRET');
    }
    // Admins get the precise reason.
    const admin = await graphqlClient(platform.server.url, tokens.ADMIN)('mutation { registerTask(input: { name: "t", path: "/etc/passwd" }) { task { id } } }');
    expect(admin.errors![0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect(admin.errors![0].message).toMatch(/outside the configured data roots/);
  });

  it('the error for a file that is not safetensors does not echo its bytes', async () => {
    const admin = graphqlClient(platform.server.url, tokens.ADMIN);
    for (const [name, bytes] of [['header.safetensors', 'SECRET!!{"not": "a header"}'], ['json.safetensors', '\x10\x00\x00\x00\x00\x00\x00\x00SECRETSECRETSECR']] as const) {
      writeFileSync(join(platform.root, name), bytes, 'latin1');
      const result = await admin(REGISTER, { input: { name: `x-${name}`, kind: 'BASE', path: join(platform.root, name) } });
      expect(result.errors![0].extensions.code).toBe('BAD_USER_INPUT');
      expect(result.errors![0].message.replace(/100000000-byte/, '')).not.toMatch(/SECRET|\d{6,}/);
      expect(result.errors![0].message).toContain(name);
    }
  });

  it('serves a page of its own at / and no CDN landing page', async () => {
    const page = await (await fetch(platform.server.url.replace('/graphql', '/'))).text();
    expect(page).toContain('<title>apl-merge</title>');
    expect(page).not.toMatch(/(src|href)=["']?https?:/);
    const landing = await fetch(platform.server.url, { headers: { accept: 'text/html' } });
    expect(await landing.text()).not.toMatch(/cdn|apollographql\.com|embeddable-sandbox/i);
  });
});
