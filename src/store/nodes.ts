/** Finding any entity by its id (every id is a UUID, unique across tables): for the API's node(id:). */
import { PrismaClient } from './generated/client';

export type NodeKind = 'Model' | 'Checkpoint' | 'Task' | 'Evaluation' | 'Merge' | 'ImportanceAnalysis' | 'EvaluationRun';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The entity with this id and its kind, or undefined (also for an id that is no UUID). */
export async function findNode(prisma: PrismaClient, id: string): Promise<{ kind: NodeKind; row: Record<string, unknown> } | undefined> {
  if (!UUID.test(id)) return undefined;
  const found = await Promise.all([
    prisma.model.findUnique({ where: { id } }).then((row) => row && { kind: 'Model' as const, row }),
    prisma.checkpoint.findUnique({ where: { id } }).then((row) => row && { kind: 'Checkpoint' as const, row }),
    prisma.task.findUnique({ where: { id } }).then((row) => row && { kind: 'Task' as const, row }),
    prisma.evaluation.findUnique({ where: { id }, include: { task: true } }).then((row) => row && { kind: 'Evaluation' as const, row }),
    prisma.merge.findUnique({ where: { id } }).then((row) => row && { kind: 'Merge' as const, row }),
    prisma.importanceAnalysis.findUnique({ where: { id } }).then((row) => row && { kind: 'ImportanceAnalysis' as const, row }),
    prisma.evaluationRun.findUnique({ where: { id } }).then((row) => row && { kind: 'EvaluationRun' as const, row }),
  ]);
  return found.find((f) => f !== null) as { kind: NodeKind; row: Record<string, unknown> } | undefined;
}
