/**
 * Lineage queries by recursive SQL: ancestors and descendants of a model to a depth, and the whole
 * graph below a base as nodes and edges — without loading the registry into memory.
 */
import { PrismaClient } from './generated/client';

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

/** Models the given one descends from, nearest first, up to `maxDepth` generations. */
export async function ancestors(prisma: PrismaClient, modelId: string, maxDepth = 10): Promise<LineageNode[]> {
  checkDepth(maxDepth);
  return prisma.$queryRaw<LineageNode[]>`
    WITH RECURSIVE up(id, depth) AS (
      SELECT parent_id, 1 FROM lineage_edges WHERE child_id = ${modelId}::uuid
      UNION
      SELECT e.parent_id, up.depth + 1 FROM lineage_edges e JOIN up ON e.child_id = up.id WHERE up.depth < ${maxDepth}
    )
    SELECT m.id::text AS id, m.name, m.kind::text AS kind, MIN(up.depth)::int AS depth
    FROM up JOIN models m ON m.id = up.id
    GROUP BY m.id, m.name, m.kind
    ORDER BY depth, m.name`;
}

/** Models derived from the given one, nearest first, up to `maxDepth` generations. */
export async function descendants(prisma: PrismaClient, modelId: string, maxDepth = 10): Promise<LineageNode[]> {
  checkDepth(maxDepth);
  return prisma.$queryRaw<LineageNode[]>`
    WITH RECURSIVE down(id, depth) AS (
      SELECT child_id, 1 FROM lineage_edges WHERE parent_id = ${modelId}::uuid
      UNION
      SELECT e.child_id, down.depth + 1 FROM lineage_edges e JOIN down ON e.parent_id = down.id WHERE down.depth < ${maxDepth}
    )
    SELECT m.id::text AS id, m.name, m.kind::text AS kind, MIN(down.depth)::int AS depth
    FROM down JOIN models m ON m.id = down.id
    GROUP BY m.id, m.name, m.kind
    ORDER BY depth, m.name`;
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
