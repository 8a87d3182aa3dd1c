/**
 * What the store and the API keep between reads, and why none of it is ever stale: lineage reads
 * of one turn of the event loop share one statement; lineage answers are remembered under the
 * lineage version (migration 0010) and served only while it is the database's — a change made by
 * any writer, even SQL by hand, is seen by the very next read; verified tokens are remembered only
 * while revocations can be heard. Real PostgreSQL, statements counted on the client that sends them.
 */
import { Client } from 'pg';
import { createPrisma, PrismaClient } from '../src/store/client';
import { ancestors, descendants, lineageGraph } from '../src/store/lineage';
import { migrate } from '../src/store/migrate';
import { ScratchDatabase } from '../src/store/scratch';
import { createToken, revokeToken } from '../src/store/tokens';
import { TokenCache } from '../src/api/token-cache';
import { createTestDatabase } from './helpers/database';

let database: ScratchDatabase;
let prisma: PrismaClient;
let other: Client;
const statements: string[] = [];
const walks = () => statements.filter((s) => s.includes('WITH RECURSIVE')).length;
const versionReads = () => statements.filter((s) => s.includes('FROM lineage_version')).length;
const tokenReads = () => statements.filter((s) => s.includes('"api_tokens"') && s.startsWith('SELECT')).length;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  prisma = createPrisma(database.url, { onQuery: (sql) => void statements.push(sql) });
  // A second writer, as a worker or `psql` would be: the cache must hear of its changes too.
  other = new Client({ connectionString: database.url });
  await other.connect();
});

afterAll(async () => {
  await other?.end();
  await prisma?.$disconnect();
  await database?.drop();
});

const ids: Record<string, string> = {};

async function model(name: string, kind: 'BASE' | 'FINETUNE' | 'MERGE', parents: string[] = []): Promise<string> {
  const checkpoint = await prisma.checkpoint.create({ data: { uri: `file:///${name}`, sha256: 'a', bytes: 1n, dtype: 'F32', parameterCount: 1n, tensorCount: 1 } });
  const created = await prisma.model.create({ data: { name, kind, architecture: 'mlp', checkpointId: checkpoint.id } });
  for (const parent of parents) await prisma.lineageEdge.create({ data: { parentId: ids[parent], childId: created.id, relation: kind === 'MERGE' ? 'merge' : 'finetune' } });
  return (ids[name] = created.id);
}

beforeAll(async () => {
  await model('base', 'BASE');
  await model('ft-a', 'FINETUNE', ['base']);
  await model('ft-b', 'FINETUNE', ['base']);
  await model('ft-a2', 'FINETUNE', ['ft-a']);
  await model('merged', 'MERGE', ['ft-a2', 'ft-b']);
  await model('other-base', 'BASE');
});

it('answers reads made together with one statement, each with its own answer', async () => {
  const asked = ['merged', 'ft-a2', 'ft-b', 'merged', 'base', 'other-base'];
  const one = await Promise.all(asked.map(async (name) => (await ancestors(prisma, ids[name], 10)).map((n) => `${n.name}@${n.depth}`)));
  statements.length = 0;
  // Depth 9 was never asked: nothing remembered, so this shows the batching alone.
  const together = await Promise.all(asked.map(async (name) => (await ancestors(prisma, ids[name], 9)).map((n) => `${n.name}@${n.depth}`)));
  expect(walks()).toBe(1);
  expect(versionReads()).toBe(1);
  expect(together).toEqual(one);
  expect(one[0]).toEqual(['ft-a2@1', 'ft-b@1', 'base@2', 'ft-a@2']);
  expect(one[4]).toEqual([]);
  // An id that is not a UUID is refused alone; it does not fail the reads batched with it.
  const [bad, good] = await Promise.allSettled([ancestors(prisma, 'not-an-id', 10), ancestors(prisma, ids.merged, 10)]);
  expect(bad.status).toBe('rejected');
  expect(good).toMatchObject({ status: 'fulfilled', value: expect.arrayContaining([expect.objectContaining({ name: 'base' })]) });
});

it('serves a remembered answer only while the lineage version is unchanged, whoever changes it', async () => {
  const graph = async () => {
    const g = await lineageGraph(prisma, ids.base);
    return { nodes: g.nodes.map((n) => `${n.name}@${n.depth}`), edges: g.edges.length };
  };
  const first = await graph();
  expect(first).toEqual({ nodes: ['base@0', 'ft-a@1', 'ft-b@1', 'ft-a2@2', 'merged@2'], edges: 5 });
  statements.length = 0;
  expect(await graph()).toEqual(first);
  // Remembered: the version's one-row read, no walk.
  expect(walks()).toBe(0);
  expect(versionReads()).toBe(1);

  // A model added by another connection (a worker, or SQL by hand) is in the very next answer.
  const checkpoint = (await other.query(`INSERT INTO checkpoints (id, uri, sha256, bytes, dtype, parameter_count, tensor_count) VALUES (gen_random_uuid(), 'file:///late', 'a', 1, 'F32', 1, 1) RETURNING id`)).rows[0].id as string;
  const late = (await other.query(`INSERT INTO models (id, name, kind, architecture, checkpoint_id) VALUES (gen_random_uuid(), 'late', 'FINETUNE', 'mlp', $1) RETURNING id::text`, [checkpoint])).rows[0].id as string;
  await other.query(`INSERT INTO lineage_edges (parent_id, child_id, relation) VALUES ($1, $2, 'finetune')`, [ids['ft-b'], late]);
  expect((await graph()).nodes).toEqual(['base@0', 'ft-a@1', 'ft-b@1', 'ft-a2@2', 'late@2', 'merged@2']);

  // A rename shows in every remembered answer that names the model.
  const before = (await descendants(prisma, ids['ft-a'], 10)).map((n) => n.name);
  await prisma.model.update({ where: { id: ids['ft-a2'] }, data: { name: 'ft-a2-renamed' } });
  expect((await descendants(prisma, ids['ft-a'], 10)).map((n) => n.name)).toEqual(before.map((n) => (n === 'ft-a2' ? 'ft-a2-renamed' : n)));
  expect((await graph()).nodes).toContain('ft-a2-renamed@2');

  // A model deleted (its edges go with it) leaves the answers at once.
  await other.query('DELETE FROM models WHERE id = $1', [late]);
  expect((await graph()).nodes).toEqual(['base@0', 'ft-a@1', 'ft-b@1', 'ft-a2-renamed@2', 'merged@2']);
});

it('remembers nothing read inside a transaction, which sees its own uncommitted changes', async () => {
  await lineageGraph(prisma, ids.base);
  await expect(
    prisma.$transaction(async (tx) => {
      const checkpoint = await tx.checkpoint.create({ data: { uri: 'file:///tx', sha256: 'a', bytes: 1n, dtype: 'F32', parameterCount: 1n, tensorCount: 1 } });
      const child = await tx.model.create({ data: { name: 'uncommitted', kind: 'FINETUNE', architecture: 'mlp', checkpointId: checkpoint.id } });
      await tx.lineageEdge.create({ data: { parentId: ids.base, childId: child.id, relation: 'finetune' } });
      expect((await descendants(tx as unknown as PrismaClient, ids.base, 1)).map((n) => n.name)).toContain('uncommitted');
      throw new Error('roll back');
    }),
  ).rejects.toThrow('roll back');
  expect((await descendants(prisma, ids.base, 1)).map((n) => n.name)).toEqual(['ft-a', 'ft-b']);
});

it('answers a verified token from memory only while revocations can be heard, and never after one', async () => {
  const created = await createToken(prisma, { name: 'cached', role: 'VIEWER' });
  const tokens = new TokenCache();
  statements.length = 0;
  // Not listening (yet): every check reads the store.
  await tokens.verify(prisma, created.token);
  await tokens.verify(prisma, created.token);
  expect(tokenReads()).toBe(2);
  tokens.setListening(true);
  statements.length = 0;
  expect(await tokens.verify(prisma, created.token)).toMatchObject({ ok: true, token: { name: 'cached' } });
  expect(await tokens.verify(prisma, created.token)).toMatchObject({ ok: true });
  expect(tokenReads()).toBe(1);
  // The revocation's NOTIFY (what the server's listener hears) empties the entry: the store says no.
  const revoked = await revokeToken(prisma, 'cached');
  tokens.revoked(revoked.id);
  expect(await tokens.verify(prisma, created.token)).toEqual({ ok: false, reason: 'token "cached" was revoked' });
  // A lookup that began before a revocation was heard is not remembered.
  const second = await createToken(prisma, { name: 'raced', role: 'VIEWER' });
  const pending = tokens.verify(prisma, second.token);
  tokens.revoked('some-other-token');
  await pending;
  statements.length = 0;
  await tokens.verify(prisma, second.token);
  expect(tokenReads()).toBe(1);
  // The listener lost: nothing from memory until it is back.
  tokens.setListening(false);
  statements.length = 0;
  await tokens.verify(prisma, second.token);
  await tokens.verify(prisma, second.token);
  expect(tokenReads()).toBe(2);
  expect(tokens.size).toBe(0);
});

it('shares the last version read with requests that began before it, and reads again for one that began after a change', async () => {
  const requestBegan = performance.now();
  await lineageGraph(prisma, ids.base);
  statements.length = 0;
  // A request that began before that read: the read shows the registry during the request, so it is shared.
  await lineageGraph(prisma, ids.base, undefined, { since: requestBegan });
  await ancestors(prisma, ids.merged, 10, { since: requestBegan });
  expect(versionReads()).toBe(0);
  // A change, then a request that began after it: the version is read again and the change is seen.
  await other.query("UPDATE models SET name = 'base-renamed' WHERE id = $1", [ids.base]);
  const laterRequest = performance.now();
  expect((await lineageGraph(prisma, ids.base, undefined, { since: laterRequest })).nodes[0].name).toBe('base-renamed');
  expect(versionReads()).toBe(1);
  await other.query("UPDATE models SET name = 'base' WHERE id = $1", [ids.base]);
});
