/**
 * Per-request batching of the field resolvers that would otherwise query once per row (DataLoader):
 * a page of 50 models asking for their checkpoints, evaluations, parents and children costs four
 * queries, not two hundred. A loader lives for one request (one operation over WebSocket), so
 * nothing is cached across requests or users.
 */
import DataLoader from 'dataloader';
import { ImportanceArtifact, loadImportance } from '../engine/apl/artifact';
import { PrismaClient } from '../store/client';
import { Checkpoint, Evaluation, LineageEdge, Model, Task } from '../store/generated/client';

type EdgeWith<K extends 'parent' | 'child'> = LineageEdge & Record<K, Model>;

/** Rows grouped under each key, in the order the keys were asked for (an empty list for none). */
function grouped<T>(keys: readonly string[], rows: readonly T[], keyOf: (row: T) => string): T[][] {
  const byKey = new Map<string, T[]>(keys.map((k) => [k, []]));
  for (const row of rows) byKey.get(keyOf(row))?.push(row);
  return keys.map((k) => byKey.get(k)!);
}

/** One row per key, or an Error saying which is missing. */
function byId<T extends { id: string }>(what: string, keys: readonly string[], rows: readonly T[]): Array<T | Error> {
  const found = new Map(rows.map((row) => [row.id, row]));
  return keys.map((k) => found.get(k) ?? new Error(`${what} ${k} does not exist`));
}

export function createLoaders(prisma: PrismaClient) {
  return {
    model: new DataLoader<string, Model>(async (ids) => byId('model', ids, await prisma.model.findMany({ where: { id: { in: [...ids] } } }))),
    task: new DataLoader<string, Task>(async (ids) => byId('task', ids, await prisma.task.findMany({ where: { id: { in: [...ids] } } }))),
    checkpoint: new DataLoader<string, Checkpoint>(async (ids) => byId('checkpoint', ids, await prisma.checkpoint.findMany({ where: { id: { in: [...ids] } } }))),
    evaluations: new DataLoader<string, Array<Evaluation & { task: Task }>>(async (modelIds) =>
      grouped(modelIds, await prisma.evaluation.findMany({ where: { modelId: { in: [...modelIds] } }, include: { task: true }, orderBy: [{ task: { name: 'asc' } }, { split: 'asc' }] }), (e) => e.modelId),
    ),
    parents: new DataLoader<string, Array<EdgeWith<'parent'>>>(async (childIds) =>
      grouped(childIds, await prisma.lineageEdge.findMany({ where: { childId: { in: [...childIds] } }, include: { parent: true }, orderBy: { createdAt: 'asc' } }), (e) => e.childId),
    ),
    /** An analysis's importance artifact by path: read once however many of its fields are asked for. */
    artifact: new DataLoader<string, ImportanceArtifact>(async (paths) =>
      paths.map((path) => {
        try {
          return loadImportance(path);
        } catch (err) {
          return err as Error;
        }
      }),
    ),
    children: new DataLoader<string, Array<EdgeWith<'child'>>>(async (parentIds) =>
      grouped(parentIds, await prisma.lineageEdge.findMany({ where: { parentId: { in: [...parentIds] } }, include: { child: true }, orderBy: { createdAt: 'asc' } }), (e) => e.parentId),
    ),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
