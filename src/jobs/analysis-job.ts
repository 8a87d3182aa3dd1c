/**
 * Running a queued importance analysis: the engine measures the model against its base on the
 * task's probe split, the artifact (safetensors + JSON summary) is written to a staging directory
 * and renamed into the job's output directory, and one transaction marks the analysis COMPLETED
 * with the artifact's uri, its summary and the result report. Retries, cancels and permanent
 * errors behave as for merges.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { analyseImportance } from '../engine/apl/analysis';
import { saveImportance } from '../engine/apl/artifact';
import { PartitionLevel } from '../engine/apl/partitions';
import { createStagingDirectory, publishDirectory } from '../engine/checkpoint/files';
import { Prisma } from '../store/generated/client';
import { FINAL_STATUSES, transitionJob } from '../store/jobs';
import { checkpointPath } from '../store/registry';
import { JobAttempt, JobContext } from './context';
import { isPermanent, jobOutputDirectory, removeStaleStaging } from './outputs';
import { progressRecorder } from './progress';

export const ARTIFACT_NAME = 'importance.safetensors';

export async function runAnalysisJob(context: JobContext, attempt: JobAttempt, stop: AbortController): Promise<void> {
  const { prisma } = context;
  const id = attempt.id;
  const analysis = await prisma.importanceAnalysis.findUnique({ where: { id }, include: { model: { include: { checkpoint: true } }, baseModel: { include: { checkpoint: true } }, task: true } });
  if (!analysis || FINAL_STATUSES.includes(analysis.status)) return;
  const started = await transitionJob(prisma, 'analysis', id, {
    from: ['QUEUED', 'RUNNING'],
    to: 'RUNNING',
    message: attempt.retryCount > 0 ? `running again on ${context.workerName} (attempt ${attempt.retryCount + 1})` : `running on ${context.workerName}`,
  });
  if (!started) return;
  await prisma.importanceAnalysis.update({ where: { id }, data: { attempts: { increment: 1 } } });
  const outDir = jobOutputDirectory(context.outputRoot, 'analyses', id);
  removeStaleStaging(outDir);
  const recorder = progressRecorder(prisma, 'analysis', id, () => stop.abort(), (err) => context.log(`analysis ${id}: progress not recorded: ${err.message}`));
  const signal = AbortSignal.any([attempt.signal, stop.signal]);
  let staging: string | undefined;
  try {
    if (!analysis.baseModel) throw new Error(`analysis ${id} has no base model`);
    const modelPath = checkpointPath(analysis.model.checkpoint.uri);
    const basePath = checkpointPath(analysis.baseModel.checkpoint.uri);
    const probePath = checkpointPath(analysis.task.dataUri);
    const result = await analyseImportance({
      basePath,
      modelPath,
      probePath,
      task: analysis.task.name,
      level: analysis.level as PartitionLevel,
      estimator: analysis.estimator as 'exact' | 'gradient',
      onProgress: recorder.onProgress,
      signal,
    });
    await recorder.flush();
    staging = createStagingDirectory(outDir);
    const seconds = analysis.estimator === 'exact' ? result.exactSeconds! : result.gradientSeconds!;
    const metadata = { backend: context.backend, probe: probePath, probe_examples: String(result.probeExamples), [`${analysis.estimator}_seconds`]: String(seconds) };
    const paths = saveImportance(join(staging, ARTIFACT_NAME), result.scheme, { task: result.task, model: modelPath, base: basePath, scores: result.scores, metadata });
    const summary = JSON.parse(readFileSync(paths.summary, 'utf8')) as Prisma.InputJsonObject;
    publishDirectory(staging, outDir, true);
    staging = undefined;
    const report = { backend: context.backend, seconds, partitions: result.scheme.count, probeExamples: result.probeExamples, ...(result.cleanLoss !== undefined ? { cleanLoss: result.cleanLoss } : {}) };
    const completed = await transitionJob(prisma, 'analysis', id, { from: ['RUNNING'], to: 'COMPLETED', message: `${result.scheme.count} partitions scored in ${seconds.toFixed(2)} s` }, async (tx) => {
      await tx.importanceAnalysis.update({ where: { id }, data: { artifactUri: `file://${join(outDir, ARTIFACT_NAME)}`, summary, result: report, total: result.scheme.count, done: result.scheme.count, error: null } });
    });
    if (!completed) rmSync(outDir, { recursive: true, force: true });
    context.log(`analysis ${id}: ${completed ? 'COMPLETED' : 'cancelled while running; output discarded'}`);
  } catch (err) {
    await recorder.flush();
    if (staging) rmSync(staging, { recursive: true, force: true });
    if (stop.signal.aborted) {
      rmSync(outDir, { recursive: true, force: true });
      context.log(`analysis ${id}: cancelled`);
      return;
    }
    const message = (err as Error).message;
    if (isPermanent(err)) {
      await transitionJob(prisma, 'analysis', id, { from: ['RUNNING'], to: 'FAILED', message: `failed: ${message}`, error: message });
      context.log(`analysis ${id}: FAILED: ${message}`);
      return;
    }
    await prisma.importanceAnalysis.update({ where: { id }, data: { error: message } });
    throw err;
  }
}
