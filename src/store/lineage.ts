/**
 * Lineage queries by recursive SQL: ancestors and descendants of a model to a depth, and the whole
 * graph below a base as nodes and edges — without loading the registry into memory.
 */
import { Prisma, PrismaClient } from './generated/client';

export interface LineageNode {
  id: string;
  name: string;
  kind: string;
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
 * Walks lineage edges from a model, up (towards parents) or down (towards children), to a depth;
 * with `includeStart` the model itself comes first, at depth 0. A model reached by several paths
 * (merges have several parents) appears once, at its nearest depth.
 */
async function walk(prisma: PrismaClient, modelId: string, maxDepth: number, direction: 'up' | 'down', includeStart = false): Promise<LineageNode[]> {
  checkDepth(maxDepth);
  // Fixed column names, never user input: safe to splice.
  const [from, to] = direction === 'up' ? [Prisma.raw('child_id'), Prisma.raw('parent_id')] : [Prisma.raw('parent_id'), Prisma.raw('child_id')];
  return prisma.$queryRaw<LineageNode[]>`
    WITH RECURSIVE reached(id, depth) AS (
      SELECT ${modelId}::uuid, 0
      UNION
      SELECT e.${to}, reached.depth + 1 FROM lineage_edges e JOIN reached ON e.${from} = reached.id WHERE reached.depth < ${maxDepth}
    ), nearest AS (
      SELECT id, MIN(depth) AS depth FROM reached GROUP BY id
    )
    SELECT m.id::text AS id, m.name, m.kind::text AS kind, nearest.depth::int AS depth
    FROM nearest JOIN models m ON m.id = nearest.id
    WHERE nearest.depth >= ${includeStart ? 0 : 1}
    ORDER BY depth, m.name`;
}

/** Models the given one descends from, nearest first, up to `maxDepth` generations. */
export function ancestors(prisma: PrismaClient, modelId: string, maxDepth = 10): Promise<LineageNode[]> {
  return walk(prisma, modelId, maxDepth, 'up');
}

/** Models derived from the given one, nearest first, up to `maxDepth` generations. */
export function descendants(prisma: PrismaClient, modelId: string, maxDepth = 10): Promise<LineageNode[]> {
  return walk(prisma, modelId, maxDepth, 'down');
}

/** The graph below a base: the base and every descendant as nodes, and every edge among them. */
export async function lineageGraph(prisma: PrismaClient, baseId: string, maxDepth = MAX_DEPTH): Promise<{ nodes: LineageNode[]; edges: LineageEdgeRow[] }> {
  const nodes = await walk(prisma, baseId, maxDepth, 'down', true);
  if (nodes.length === 0 || nodes[0].id !== baseId) throw new Error(`model ${baseId} does not exist`);
  const ids = nodes.map((n) => n.id);
  const edges = await prisma.$queryRaw<LineageEdgeRow[]>`
    SELECT parent_id::text AS "parentId", child_id::text AS "childId", relation, weight
    FROM lineage_edges
    WHERE parent_id = ANY(${ids}::uuid[]) AND child_id = ANY(${ids}::uuid[])
    ORDER BY parent_id, child_id`;
  return { nodes, edges };
}
