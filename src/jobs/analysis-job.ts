/**
 * Running a queued importance analysis: the engine measures the model against its base on the
 * task's probe split, the artifact (safetensors + JSON summary) is written to a staging directory
 * and renamed into the job's output directory, and one transaction marks the analysis COMPLETED
 * with the artifact's uri, its summary and the result report. See job-runner.ts for what every
 * attempt shares (retries, cancels, permanent errors).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { analyseImportance, wgslKernelMetadata } from '../engine/apl/analysis';
import { saveImportance } from '../engine/apl/artifact';
import { PartitionLevel } from '../engine/apl/partitions';
import { createStagingDirectory, publishDirectory } from '../engine/checkpoint/files';
import { Prisma } from '../store/generated/client';
import { transitionJob } from '../store/jobs';
import { checkpointPath } from '../store/registry';
import { JobAttempt, JobContext } from './context';
import { runAttempt } from './job-runner';
import { runnableModel } from './model-reference';

export const ARTIFACT_NAME = 'importance.safetensors';

export async function runAnalysisJob(context: JobContext, attempt: JobAttempt, stop: AbortController): Promise<void> {
  const id = attempt.id;
  await runAttempt(context, 'analysis', attempt, stop, async ({ outDir, recorder, signal, lease, checkLease, pass }) => {
    const analysis = await context.prisma.importanceAnalysis.findUniqueOrThrow({ where: { id }, include: { model: { include: { checkpoint: true } }, baseModel: { include: { checkpoint: true } }, task: true } });
    if (!analysis.baseModel) throw new Error(`analysis ${id} has no base model`);
    const modelPath = await runnableModel(context.prisma, analysis.model);
    const basePath = checkpointPath(analysis.baseModel.checkpoint.uri);
    const probePath = checkpointPath(analysis.task.dataUri);
    const estimator = analysis.estimator as 'exact' | 'gradient';
    const result = await analyseImportance({ basePath, modelPath, probePath, task: analysis.task.name, level: analysis.level as PartitionLevel, estimator, onProgress: recorder.onProgress, signal });
    await recorder.flush();
    await pass('computed');
    const seconds = estimator === 'exact' ? result.exactSeconds! : result.gradientSeconds!;
    const staging = createStagingDirectory(outDir);
    let summary: Prisma.InputJsonObject;
    try {
      const metadata = { backend: context.backend, probe: probePath, probe_examples: String(result.probeExamples), [`${estimator}_seconds`]: String(seconds), ...wgslKernelMetadata(result) };
      const paths = saveImportance(join(staging, ARTIFACT_NAME), result.scheme, { task: result.task, model: modelPath, base: basePath, scores: result.scores, metadata });
      summary = JSON.parse(readFileSync(paths.summary, 'utf8')) as Prisma.InputJsonObject;
      // Only the attempt that owns the job publishes into its output directory.
      await checkLease();
      publishDirectory(staging, outDir, true);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    await pass('published');
    const report = { backend: context.backend, seconds, partitions: result.scheme.count, probeExamples: result.probeExamples, wgslKernels: result.wgslKernels, ...(result.cleanLoss !== undefined ? { cleanLoss: result.cleanLoss } : {}) };
    return transitionJob(context.prisma, 'analysis', id, { from: ['RUNNING'], to: 'COMPLETED', lease, message: `${result.scheme.count} partitions scored in ${seconds.toFixed(2)} s` }, async (tx) => {
      await tx.importanceAnalysis.update({ where: { id }, data: { artifactUri: `file://${join(outDir, ARTIFACT_NAME)}`, summary, result: report, total: result.scheme.count, done: result.scheme.count, error: null } });
    });
  });
}
