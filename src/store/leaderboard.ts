/**
 * A base's leaderboard: every model below it (the base included) with its scores on one split,
 * each beside the best fine-tune's score on that task — normalised accuracy, the share of the
 * specialist's skill a merge keeps — ranked by the mean normalised score.
 */
import { PrismaClient } from './generated/client';
import { lineageGraph } from './lineage';
import { RegistryError } from './registry-error';

export interface LeaderboardScore {
  taskId: string;
  task: string;
  value: number;
  /** The best FINETUNE's score on this task and split, and value / that (null without one). */
  bestFineTune: number | null;
  normalized: number | null;
}

export interface LeaderboardRow {
  modelId: string;
  scores: LeaderboardScore[];
  average: number;
  /** Mean of the normalised scores that exist (null when none does). */
  normalizedAverage: number | null;
}

export async function leaderboard(prisma: PrismaClient, baseId: string, split: string): Promise<LeaderboardRow[]> {
  const graph = await lineageGraph(prisma, baseId).catch(() => {
    throw new RegistryError('NOT_FOUND', `baseId: model ${baseId} does not exist`);
  });
  const kinds = new Map(graph.nodes.map((n) => [n.id, n.kind]));
  const evaluations = await prisma.evaluation.findMany({ where: { modelId: { in: [...kinds.keys()] }, split }, include: { task: true }, orderBy: [{ task: { name: 'asc' } }] });
  const best = new Map<string, number>();
  for (const e of evaluations) if (kinds.get(e.modelId) === 'FINETUNE') best.set(e.taskId, Math.max(best.get(e.taskId) ?? -Infinity, e.value));
  const rows = new Map<string, LeaderboardScore[]>();
  for (const e of evaluations) {
    const specialist = best.get(e.taskId) ?? null;
    const score = { taskId: e.taskId, task: e.task.name, value: e.value, bestFineTune: specialist, normalized: specialist ? e.value / specialist : null };
    rows.set(e.modelId, [...(rows.get(e.modelId) ?? []), score]);
  }
  const mean = (values: number[]) => (values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : null);
  return [...rows]
    .map(([modelId, scores]) => ({ modelId, scores, average: mean(scores.map((s) => s.value))!, normalizedAverage: mean(scores.flatMap((s) => (s.normalized === null ? [] : [s.normalized]))) }))
    .sort((a, b) => (b.normalizedAverage ?? -Infinity) - (a.normalizedAverage ?? -Infinity) || b.average - a.average || a.modelId.localeCompare(b.modelId));
}
