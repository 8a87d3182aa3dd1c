/**
 * What must hold after any fault, once the platform has settled: every job ended — COMPLETED
 * exactly once (a merge with its one output model) or FAILED/CANCELLED with a reason —, or is
 * RUNNING on a worker that is alive; and under each output root, only completed jobs' outputs and
 * no staging directories.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { OUTPUT_FOLDERS } from '../../src/jobs/outputs';
import { PrismaClient } from '../../src/store/client';
import { workerAlive } from '../../src/store/workers';

export async function expectJobInvariants(prisma: PrismaClient, outputRoots: readonly string[]): Promise<void> {
  const problems: string[] = [];
  const jobs = [
    ...(await prisma.merge.findMany({ include: { outputModel: true } })).map((m) => ({ kind: 'merge' as const, ...m })),
    ...(await prisma.importanceAnalysis.findMany()).map((a) => ({ kind: 'analysis' as const, ...a, outputModel: undefined, outputName: null })),
    ...(await prisma.evaluationRun.findMany()).map((e) => ({ kind: 'evaluation' as const, ...e, outputModel: undefined, outputName: null })),
  ];
  for (const job of jobs) {
    const events = await prisma.jobEvent.findMany({ where: { jobId: job.id, phase: 'status' }, orderBy: { id: 'asc' } });
    const last = events.at(-1);
    if (last?.status !== job.status) problems.push(`${job.kind} ${job.id}: row ${job.status}, last event ${last?.status}`);
    if (job.status === 'QUEUED') problems.push(`${job.kind} ${job.id}: still QUEUED`);
    if (job.status === 'RUNNING' && !(job.leaseWorker && (await workerAlive(prisma, job.leaseWorker)))) problems.push(`${job.kind} ${job.id}: RUNNING without a live worker (${job.leaseWorker})`);
    if ((job.status === 'FAILED' || job.status === 'CANCELLED') && !(job.error || last?.message)) problems.push(`${job.kind} ${job.id}: ${job.status} without a reason`);
    if (job.status === 'COMPLETED' && job.kind === 'merge') {
      if (!job.outputModel) problems.push(`merge ${job.id}: COMPLETED without its model`);
      const name = job.outputName ?? job.outputModel?.name;
      if (name && (await prisma.model.count({ where: { name } })) !== 1) problems.push(`merge ${job.id}: ${await prisma.model.count({ where: { name } })} models named "${name}"`);
    }
    if (job.status === 'COMPLETED' && job.kind === 'evaluation' && (await prisma.evaluation.count({ where: { modelId: job.modelId } })) === 0) problems.push(`evaluation ${job.id}: COMPLETED without scores`);
  }
  for (const root of outputRoots) {
    for (const kind of Object.keys(OUTPUT_FOLDERS) as Array<keyof typeof OUTPUT_FOLDERS>) {
      const dir = join(root, OUTPUT_FOLDERS[kind]);
      if (!existsSync(dir)) continue;
      for (const entry of readdirSync(dir)) {
        if (entry.startsWith('.')) problems.push(`${dir}/${entry}: a staging directory left behind`);
        else if (!jobs.some((j) => j.kind === kind && j.id === entry && j.status === 'COMPLETED')) problems.push(`${dir}/${entry}: output of no completed ${kind}`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`invariants broken:\n${problems.join('\n')}`);
}
