/**
 * Running a queued evaluation: the registered model is scored on the test and OOD splits of its
 * tasks (the one asked for, or every registered task it has a head for), and one transaction
 * writes the scores (replacing earlier ones of the same task, split and metric) and marks the run
 * COMPLETED. It writes no files. See job-runner.ts for what every attempt shares.
 */
import { Prisma } from '../store/generated/client';
import { transitionJob } from '../store/jobs';
import { RegistryError } from '../store/registry';
import { JobAttempt, JobContext } from './context';
import { runAttempt } from './job-runner';
import { scorableTasks, scoreOnTasks } from './scoring';
import { runnableModel } from './model-reference';

export async function runEvaluationJob(context: JobContext, attempt: JobAttempt, stop: AbortController): Promise<void> {
  const id = attempt.id;
  await runAttempt(context, 'evaluation', attempt, stop, async ({ recorder, signal, lease, pass }) => {
    const run = await context.prisma.evaluationRun.findUniqueOrThrow({ where: { id }, include: { model: { include: { checkpoint: true } } } });
    const reference = await runnableModel(context.prisma, run.model);
    const found = await scorableTasks(context.prisma, reference, run.taskId ?? undefined);
    // Checked when it was requested; a task or file changed since then fails the run, not a retry.
    if ('reason' in found) throw new RegistryError('BAD_USER_INPUT', `"${run.model.name}" cannot be evaluated: ${found.reason}`);
    const started = performance.now();
    const scores = await scoreOnTasks(reference, found.tasks, recorder.onProgress, signal);
    const seconds = (performance.now() - started) / 1000;
    await recorder.flush();
    await pass('computed');
    const summary = scores.map((s) => `${s.task}/${s.split} ${(100 * s.value).toFixed(1)}%`).join(', ');
    return transitionJob(context.prisma, 'evaluation', id, { from: ['RUNNING'], to: 'COMPLETED', lease, message: `scored ${run.model.name}: ${summary}` }, async (tx) => {
      for (const s of scores) {
        const key = { modelId: run.modelId, taskId: s.taskId, split: s.split, metric: 'accuracy' };
        await tx.evaluation.upsert({ where: { modelId_taskId_split_metric: key }, create: { ...key, value: s.value }, update: { value: s.value, createdAt: new Date() } });
      }
      const result = { backend: context.backend, seconds, scores: scores.map((s) => ({ task: s.task, split: s.split, metric: 'accuracy', value: s.value })) };
      await tx.evaluationRun.update({ where: { id }, data: { result: result as Prisma.InputJsonObject, done: found.tasks.length, total: found.tasks.length, error: null } });
    });
  });
}
