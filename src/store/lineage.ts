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

/** Walks lineage edges from a model, up (towards parents) or down (towards children), to a depth. */
async function walk(prisma: PrismaClient, modelId: string, maxDepth: number, direction: 'up' | 'down'): Promise<LineageNode[]> {
  checkDepth(maxDepth);
  // Fixed column names, never user input: safe to splice.
  const [from, to] = direction === 'up' ? [Prisma.raw('child_id'), Prisma.raw('parent_id')] : [Prisma.raw('parent_id'), Prisma.raw('child_id')];
  return prisma.$queryRaw<LineageNode[]>`
    WITH RECURSIVE reached(id, depth) AS (
      SELECT ${to}, 1 FROM lineage_edges WHERE ${from} = ${modelId}::uuid
      UNION
      SELECT e.${to}, reached.depth + 1 FROM lineage_edges e JOIN reached ON e.${from} = reached.id WHERE reached.depth < ${maxDepth}
    )
    SELECT m.id::text AS id, m.name, m.kind::text AS kind, MIN(reached.depth)::int AS depth
    FROM reached JOIN models m ON m.id = reached.id
    GROUP BY m.id, m.name, m.kind
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
  const below = await descendants(prisma, baseId, maxDepth);
  const root = await prisma.model.findUnique({ where: { id: baseId }, select: { id: true, name: true, kind: true } });
  if (!root) throw new Error(`model ${baseId} does not exist`);
  const nodes: LineageNode[] = [{ ...root, kind: root.kind, depth: 0 }, ...below];
  const ids = nodes.map((n) => n.id);
  const edges = await prisma.lineageEdge.findMany({
    where: { parentId: { in: ids }, childId: { in: ids } },
    select: { parentId: true, childId: true, relation: true, weight: true },
    orderBy: [{ parentId: 'asc' }, { childId: 'asc' }],
  });
  return { nodes, edges };
}
