/**
 * Lineage query latency under load (README: "Platform"). A fresh database gets 10,000 models in
 * 100 lineage trees of depth up to 10 (a tenth of the nodes are merges of two parents); a real
 * `apl-merge serve` process answers 100 concurrent clients, each sending the ancestors query of a
 * random deep model or the lineage graph of a random base, back to back. Reports p50/p99 latency
 * per query and the throughput.
 *
 *   npm run build && node dist/bench/lineage-latency.js [--models 10000 --trees 100 --clients 100 --requests 20000 --workers 1] [--fetch]
 */
import { Client } from 'pg';
import { Random } from '../src/engine/kernels/random';
import { cpuSecondsOfCommand, cpuSecondsOfTree, flag, freshDatabase, graphqlPoster, percentile, startServer } from './lib/platform';

interface Node {
  id: string;
  depth: number;
  parents: string[];
}

function uuid(random: Random): string {
  const hex = Array.from({ length: 32 }, () => (random.nextUint32() % 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

/** Trees of `size` nodes: each new node hangs under a random earlier node of depth < 10; 10% have a second parent. */
function buildTrees(models: number, trees: number, random: Random): { bases: Node[]; all: Node[] } {
  const bases: Node[] = [];
  const all: Node[] = [];
  const size = Math.floor(models / trees);
  for (let t = 0; t < trees; t++) {
    const tree: Node[] = [{ id: uuid(random), depth: 0, parents: [] }];
    while (tree.length < size) {
      const open = tree.filter((n) => n.depth < 10);
      // Prefer deep nodes so that the trees reach depth 10.
      const parent = open[open.length - 1 - (random.nextUint32() % Math.min(open.length, 8))];
      const node: Node = { id: uuid(random), depth: parent.depth + 1, parents: [parent.id] };
      if (random.nextFloat() < 0.1) {
        const other = open[random.nextUint32() % open.length];
        if (other.id !== parent.id) node.parents.push(other.id);
      }
      tree.push(node);
    }
    bases.push(tree[0]);
    all.push(...tree);
  }
  return { bases, all };
}

async function load(url: string, all: Node[]): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  const checkpoint = '00000000-0000-4000-a000-000000000001';
  await client.query(`INSERT INTO checkpoints (id, uri, sha256, bytes, dtype, parameter_count, tensor_count) VALUES ($1, 'file:///bench', $2, 1, 'F32', 1, 1)`, [checkpoint, '0'.repeat(64)]);
  for (let start = 0; start < all.length; start += 1000) {
    const batch = all.slice(start, start + 1000);
    const values = batch.map((_, i) => `($${i * 4 + 1}::uuid, $${i * 4 + 2}, $${i * 4 + 3}::"ModelKind", 'mlp', $${i * 4 + 4}::uuid)`).join(',');
    await client.query(`INSERT INTO models (id, name, kind, architecture, checkpoint_id) VALUES ${values}`, batch.flatMap((n, i) => [n.id, `m-${start + i}`, n.depth === 0 ? 'BASE' : n.parents.length > 1 ? 'MERGE' : 'FINETUNE', checkpoint]));
  }
  const edges = all.flatMap((n) => n.parents.map((p) => [p, n.id, n.parents.length > 1 ? 'merge' : 'finetune']));
  for (let start = 0; start < edges.length; start += 1000) {
    const batch = edges.slice(start, start + 1000);
    const values = batch.map((_, i) => `($${i * 3 + 1}::uuid, $${i * 3 + 2}::uuid, $${i * 3 + 3})`).join(',');
    await client.query(`INSERT INTO lineage_edges (parent_id, child_id, relation) VALUES ${values}`, batch.flat());
  }
  await client.query('ANALYZE');
  await client.end();
}

const ANCESTORS = 'query($id: ID!) { model(id: $id) { ancestors(depth: 10) { id depth } } }';
const LINEAGE = 'query($id: ID!) { lineage(baseId: $id) { nodes { id depth } edges { parentId childId } } }';

async function main(): Promise<void> {
  const models = flag('models', 10000);
  const trees = flag('trees', 100);
  const clients = flag('clients', 100);
  const requests = flag('requests', 20000);
  // API processes of the server (serve --workers N).
  const serverProcesses = flag('workers', 1);
  // The load generator's HTTP client (lib/platform.ts graphqlPoster): http (default) or fetch.
  const loadClient = process.argv.includes('--fetch') ? 'fetch' : 'http';
  const random = new Random(1, 'lineage-bench');
  const { bases, all } = buildTrees(models, trees, random);
  const deep = all.filter((n) => n.depth >= 5);
  const database = await freshDatabase('apl_merge_bench');
  const server = await startServer(database.url, 'VIEWER', ['--workers', String(serverProcesses)]).catch(async (err) => {
    await database.drop();
    throw err;
  });
  try {
    await load(database.url, all);
    console.log(`${all.length} models in ${trees} trees (max depth ${Math.max(...all.map((n) => n.depth))}, ${all.filter((n) => n.parents.length > 1).length} merges); ${clients} clients (${loadClient}), ${requests} requests`);
    const latencies: Record<'ancestors' | 'lineage', number[]> = { ancestors: [], lineage: [] };
    let sent = 0;
    const send = graphqlPoster(server.url, server.token, loadClient, clients);
    const post = (query: string, id: string) => send(query, { id });
    // Warm-up: connections, plans, JIT.
    await Promise.all(Array.from({ length: 200 }, (_, i) => post(i % 2 ? ANCESTORS : LINEAGE, i % 2 ? deep[i % deep.length].id : bases[i % bases.length].id)));
    const started = Date.now();
    const cpuBefore = { server: cpuSecondsOfTree(server.child.pid!), database: cpuSecondsOfCommand('postgres'), client: process.cpuUsage() };
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const mine = new Random(c, 'client');
        while (sent < requests) {
          sent++;
          const kind = mine.nextFloat() < 0.5 ? 'ancestors' : 'lineage';
          const id = kind === 'ancestors' ? deep[mine.nextUint32() % deep.length].id : bases[mine.nextUint32() % bases.length].id;
          const t0 = process.hrtime.bigint();
          await post(kind === 'ancestors' ? ANCESTORS : LINEAGE, id);
          latencies[kind].push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const clientUsage = process.cpuUsage(cpuBefore.client);
    const perRequest = (cpuSeconds: number) => ((cpuSeconds * 1000) / requests).toFixed(2);
    const cpu = {
      server: perRequest(cpuSecondsOfTree(server.child.pid!) - cpuBefore.server),
      database: perRequest(cpuSecondsOfCommand('postgres') - cpuBefore.database),
      client: perRequest((clientUsage.user + clientUsage.system) / 1e6),
    };
    console.log('| query | requests | p50 ms | p99 ms | max ms |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const [kind, values] of Object.entries(latencies)) {
      values.sort((a, b) => a - b);
      console.log(`| ${kind} | ${values.length} | ${percentile(values, 50).toFixed(1)} | ${percentile(values, 99).toFixed(1)} | ${values[values.length - 1].toFixed(1)} |`);
    }
    console.log(`throughput: ${(requests / seconds).toFixed(0)} requests/s over ${seconds.toFixed(1)} s`);
    console.log(`CPU per request: API server ${cpu.server} ms, PostgreSQL ${cpu.database} ms, load generator ${cpu.client} ms`);
  } finally {
    await server.stop();
    if (process.argv.includes('--keep')) console.log(`kept ${database.url}`);
    else await database.drop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
