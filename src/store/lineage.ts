/**
 * Lineage queries by recursive SQL: ancestors and descendants of a model to a depth, and the whole
 * graph below a base as nodes and edges — without loading the registry into memory. Answers are
 * remembered per client under the lineage version they were read at (migration 0010's one-row
 * counter, moved on by triggers in every transaction that changes what they show), and a remembered
 * answer is served only while that version is still the database's: one indexed read, shared by
 * the requests of one turn of the event loop, instead of a recursive walk. Answers are shared
 * between callers: read them, do not change them.
 */
import { BoundedMap, batchKey, SharedReads, turnBatcher } from './batching';
import { isPooledClient, readRows } from './client';
import { PrismaClient } from './generated/client';
import { ModelKind } from './generated/enums';

export interface LineageNode {
  id: string;
  name: string;
  kind: ModelKind;
  depth: number;
}

export interface LineageEdgeRow {
  parentId: string;
  childId: string;
  relation: string;
  weight: number | null;
}

const MAX_DEPTH = 100;

function checkDepth(depth: number): number {
  if (!Number.isInteger(depth) || depth < 1 || depth > MAX_DEPTH) throw new RangeError(`depth must be an integer from 1 to ${MAX_DEPTH}, got ${depth}`);
  return depth;
}

/**
 * The recursive walk every lineage read shares: `reached` holds, for each start in the array $1,
 * every model within $2 generations of it; `nearest` each one once, at its nearest depth.
 */
const reachedFrom = (from: string, to: string) => `
    WITH RECURSIVE reached(start, id, depth) AS (
      SELECT s, s, 0 FROM unnest($1::uuid[]) AS s
      UNION
      SELECT reached.start, e.${to}, reached.depth + 1 FROM lineage_edges e JOIN reached ON e.${from} = reached.id WHERE reached.depth < $2
    ), nearest AS (
      SELECT start, id, MIN(depth)::int AS depth FROM reached GROUP BY start, id
    )`;

const walkFrom = (from: string, to: string) => `${reachedFrom(from, to)}
    SELECT nearest.start::text AS start, m.id::text AS id, m.name, m.kind::text AS kind, nearest.depth
    FROM nearest JOIN models m ON m.id = nearest.id
    WHERE nearest.depth >= $3
    ORDER BY nearest.start, nearest.depth, m.name`;

// Fixed text, never user input; prepared once per connection under their names (client.ts readRows).
const WALK = { up: walkFrom('child_id', 'parent_id'), down: walkFrom('parent_id', 'child_id') };

/**
 * Each start's graph below it, in one row: nodes as the down walk orders them, and the edges among
 * them (found from each node's parent edges, by index, not by scanning every edge per start).
 */
const GRAPH = `${reachedFrom('parent_id', 'child_id')}, graph_nodes AS (
      SELECT nearest.start, m.id, m.name, m.kind::text AS kind, nearest.depth FROM nearest JOIN models m ON m.id = nearest.id
    ), graph_edges AS (
      SELECT c.start, e.parent_id, e.child_id, e.relation, e.weight
      FROM graph_nodes c JOIN lineage_edges e ON e.child_id = c.id JOIN graph_nodes p ON p.start = c.start AND p.id = e.parent_id
    )
    SELECT n.start::text AS start, n.nodes, COALESCE(g.edges, '[]'::json) AS edges
    FROM (SELECT start, json_agg(json_build_object('id', id::text, 'name', name, 'kind', kind, 'depth', depth) ORDER BY depth, name) AS nodes FROM graph_nodes GROUP BY start) n
    LEFT JOIN (SELECT start, json_agg(json_build_object('parentId', parent_id::text, 'childId', child_id::text, 'relation', relation, 'weight', weight) ORDER BY parent_id, child_id) AS edges FROM graph_edges GROUP BY start) g
      ON g.start = n.start`;

type Graph = { nodes: readonly LineageNode[]; edges: readonly LineageEdgeRow[] };

type WalkRow = LineageNode & { start: string };

/**
 * The lineage version for a caller whose request began at `since` (performance.now()): reads are
 * shared between requests (batching.ts SharedReads), so under load nearly every request finds one
 * made during it by another and waits for no round trip of its own.
 */
function lineageVersion(prisma: PrismaClient, since: number): Promise<string | undefined> {
  let reads = versionReads.get(prisma);
  if (!reads) {
    const loader = turnBatcher<string, string | undefined>(prisma, 'lineage-version', async (keys) => {
      const [row] = await readRows<{ version: string }>(prisma, 'lineage_version', 'SELECT version::text AS version FROM lineage_version WHERE id = 1', []);
      return keys.map(() => row?.version);
    });
    versionReads.set(prisma, (reads = new SharedReads(() => loader.load(''))));
  }
  return reads.get(since);
}

const versionReads = new WeakMap<object, SharedReads<string | undefined>>();

const answers = new WeakMap<object, BoundedMap<string, { version: string; value: unknown }>>();

/** When the caller's request began (performance.now(); default: now): what it is answered is no older than that. */
export interface LineageReadOptions {
  since?: number;
}

/** `read()`'s answer, or the one remembered under `key` if it was read at the current lineage version. */
async function remembered<T>(prisma: PrismaClient, key: string, since: number, read: () => Promise<T>): Promise<T> {
  // A transaction's client sees its own uncommitted writes: nothing it reads is remembered.
  if (!isPooledClient(prisma)) return read();
  // The version is read before the answer: an answer read later is at least as new as its version says.
  const version = await lineageVersion(prisma, since);
  if (version === undefined) return read();
  let mine = answers.get(prisma);
  if (!mine) answers.set(prisma, (mine = new BoundedMap(5000)));
  const hit = mine.get(key);
  if (hit && hit.version === version) return hit.value as T;
  const value = await read();
  mine.set(key, { version, value });
  return value;
}

/**
 * Walks lineage edges from a model, up (towards parents) or down (towards children), to a depth;
 * with `includeStart` the model itself comes first, at depth 0. A model reached by several paths
 * (merges have several parents) appears once, at its nearest depth.
 */
async function walk(prisma: PrismaClient, modelId: string, maxDepth: number, direction: 'up' | 'down', options: LineageReadOptions, includeStart = false): Promise<readonly LineageNode[]> {
  checkDepth(maxDepth);
  const start = batchKey(modelId, 'model');
  const from = includeStart ? 0 : 1;
  const loader = turnBatcher<string, LineageNode[]>(
    prisma,
    `lineage-walk:${direction}:${maxDepth}:${from}`,
    async (starts) => {
      const rows = await readRows<WalkRow>(prisma, `lineage_walk_${direction}`, WALK[direction], [starts, maxDepth, from]);
      const byStart = new Map<string, LineageNode[]>();
      for (const { start: s, ...node } of rows) {
        const list = byStart.get(s);
        if (list) list.push(node);
        else byStart.set(s, [node]);
      }
      return starts.map((s) => byStart.get(s) ?? []);
    },
  );
  return remembered(prisma, `walk:${direction}:${maxDepth}:${from}:${start}`, options.since ?? performance.now(), () => loader.load(start));
}

/** Models the given one descends from, nearest first, up to `maxDepth` generations. */
export function ancestors(prisma: PrismaClient, modelId: string, maxDepth = 10, options: LineageReadOptions = {}): Promise<readonly LineageNode[]> {
  return walk(prisma, modelId, maxDepth, 'up', options);
}

/** Models derived from the given one, nearest first, up to `maxDepth` generations. */
export function descendants(prisma: PrismaClient, modelId: string, maxDepth = 10, options: LineageReadOptions = {}): Promise<readonly LineageNode[]> {
  return walk(prisma, modelId, maxDepth, 'down', options);
}

/** The graph below a base: the base and every descendant as nodes, and every edge among them. */
export async function lineageGraph(prisma: PrismaClient, baseId: string, maxDepth = MAX_DEPTH, options: LineageReadOptions = {}): Promise<Graph> {
  checkDepth(maxDepth);
  const start = batchKey(baseId, 'model');
  const loader = turnBatcher<string, Graph>(
    prisma,
    `lineage-graph:${maxDepth}`,
    async (starts) => {
      // json columns arrive parsed, from node-postgres and from Prisma alike.
      const rows = await readRows<Graph & { start: string }>(prisma, 'lineage_graph', GRAPH, [starts, maxDepth]);
      const byStart = new Map(rows.map(({ start: s, nodes, edges }) => [s, { nodes, edges }]));
      return starts.map((s) => byStart.get(s) ?? { nodes: [], edges: [] });
    },
  );
  const { nodes, edges } = await remembered(prisma, `graph:${maxDepth}:${start}`, options.since ?? performance.now(), () => loader.load(start));
  if (nodes.length === 0 || nodes[0].id !== start) throw new Error(`model ${baseId} does not exist`);
  return { nodes, edges };
}
