/**
 * Running a queued merge: the engine merges into the job's own output directory (staged and
 * renamed whole), the merged model is scored on every registered task it has a head for, and then
 * one transaction marks the merge COMPLETED and registers the output as a MERGE model with its
 * checkpoint, weighted lineage edges and evaluations. A retry after a killed attempt starts over
 * (the merge is deterministic from its seed); see job-runner.ts for what every attempt shares.
 */
import { parseMergeConfig } from '../engine/merge/config';
import { planMerge } from '../engine/merge/plan';
import { runMerge } from '../engine/merge/run';
import { ProgressCallback } from '../engine/progress';
import { Prisma } from '../store/generated/client';
import { transitionJob } from '../store/jobs';
import { describeCheckpoint, insertModel, uniquely } from '../store/registry';
import { JobAttempt, JobContext } from './context';
import { runAttempt } from './job-runner';
import { loadMergeSpec } from './merge-spec';
import { Score, scorableTasks, scoreOnTasks } from './scoring';

/** Scores of the merged model, or why it was not scored (which the merge's result records). */
async function scoreMerged(context: JobContext, outDir: string, onProgress: ProgressCallback, signal: AbortSignal): Promise<{ scores: Score[]; notEvaluated?: string }> {
  const found = await scorableTasks(context.prisma, outDir);
  if ('reason' in found) return { scores: [], notEvaluated: `not evaluated: ${found.reason}` };
  return { scores: await scoreOnTasks(outDir, found.tasks, onProgress, signal) };
}

export async function runMergeJob(context: JobContext, attempt: JobAttempt, stop: AbortController): Promise<void> {
  const id = attempt.id;
  await runAttempt(context, 'merge', attempt, stop, async ({ outDir, recorder, signal, lease, checkLease, pass }) => {
    const spec = await loadMergeSpec(context.prisma, id);
    const plan = planMerge(parseMergeConfig(spec.configText, `merge ${id}`, '/'), { nonFinite: spec.nonFinite });
    // Only the attempt that owns the job publishes into its output directory.
    const result = await runMerge(plan, outDir, { overwrite: true, threads: context.threads, onProgress: recorder.onProgress, signal, beforePublish: checkLease });
    await pass('computed');
    const { scores, notEvaluated } = await scoreMerged(context, outDir, recorder.onProgress, signal);
    await recorder.flush();
    await pass('scored');
    // The writer hashed every file on the way out; the registry records those hashes.
    const record = await describeCheckpoint(outDir, new Map(result.files.map((f) => [f.name, f.sha256])));
    const report = { backend: context.backend, device: { ...result.device }, seconds: result.seconds, tensors: result.tensors, parameters: result.parameters, sha256: result.sha256, warnings: result.warnings.length, ...(result.warnings.length > 0 ? { nonFiniteValues: result.warnings.map((w) => ({ model: w.label, tensor: w.tensor, count: w.count })) } : {}), ...(notEvaluated ? { evaluation: notEvaluated } : {}), ...(result.preparation ? { preparation: result.preparation } : {}) };
    return transitionJob(context.prisma, 'merge', id, { from: ['RUNNING'], to: 'COMPLETED', lease, message: `merged ${result.tensors} tensors in ${result.seconds.toFixed(2)} s; output model ${spec.outputName}${notEvaluated ? ` (${notEvaluated})` : ''}` }, async (tx) => {
      const parents = spec.inputs.map((input) => ({ id: input.modelId, relation: input.isBase ? 'merge-base' : 'merge', weight: input.isBase ? null : input.weight }));
      // The merged model is credited to whoever asked for the merge.
      const { createdBy } = await tx.merge.findUniqueOrThrow({ where: { id }, select: { createdBy: true } });
      const model = await uniquely(`a model named "${spec.outputName}"`, () => insertModel(tx, { name: spec.outputName, kind: 'MERGE', createdBy }, record, parents));
      if (scores.length > 0) await tx.evaluation.createMany({ data: scores.map((s) => ({ modelId: model.id, taskId: s.taskId, split: s.split, metric: 'accuracy', value: s.value })) });
      await tx.merge.update({ where: { id }, data: { outputModelId: model.id, result: report as Prisma.InputJsonObject, error: null } });
    });
  });
}
