/**
 * The demo a first `npm start` registers, so that a newcomer's first lineage query shows something:
 * the engine's quick vision zoo (a base and its fine-tunes, with their tasks), the fine-tunes'
 * evaluations and one APL merge of them, queued like any other and run by the worker.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PgBoss } from 'pg-boss';
import { buildVisionZoo, ZooManifest } from '../engine/zoo/vision';
import { requestMerge } from '../jobs/requests';
import { registerAndEvaluate } from '../jobs/evaluation-requests';
import { PrismaClient } from '../store/client';
import { namedRoots } from '../store/data-roots';
import { registerModel, registerTask } from '../store/registry';

export const DEMO_SEED = 0;

/** `demoDirectory` is the data root the demo's zoo is trained into. */
export async function registerDemo(prisma: PrismaClient, queue: PgBoss, demoDirectory: string, log: (line: string) => void): Promise<{ baseId: string; mergeId: string }> {
  const zooDirectory = join(demoDirectory, 'vision-quick');
  const manifestPath = join(zooDirectory, 'zoo.json');
  let manifest: ZooManifest;
  if (existsSync(manifestPath)) {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as ZooManifest;
  } else {
    log(`demo: training the quick vision zoo in ${zooDirectory} (seed ${DEMO_SEED}; about 20 s)`);
    manifest = await buildVisionZoo({ out: zooDirectory, quick: true, seed: DEMO_SEED, log: (line) => log(`demo: ${line}`) });
  }
  const roots = namedRoots([demoDirectory]);
  const by = { createdBy: 'apl-merge start' };
  const base = await registerModel(prisma, roots, { name: 'demo-base', kind: 'BASE', path: join(zooDirectory, manifest.base) }, by);
  const models: Array<{ modelId: string; probeTaskId: string; parameters: Record<string, unknown> }> = [];
  for (const entry of manifest.finetunes) {
    // The task first: the fine-tune is queued for evaluation on it when registered.
    const task = await registerTask(prisma, roots, { name: entry.task, path: join(zooDirectory, entry.data) }, by);
    const finetune = await registerAndEvaluate(prisma, queue, roots, { name: `demo-${entry.task}`, kind: 'FINETUNE', path: join(zooDirectory, entry.model), parentIds: [base.id] }, by);
    models.push({ modelId: finetune.id, probeTaskId: task.id, parameters: { weight: 1, density: 0.5 } });
  }
  const merge = await requestMerge(prisma, queue, { name: 'demo-apl', method: 'apl', baseModelId: base.id, models, parameters: { level: 'row', estimator: 'gradient' }, seed: DEMO_SEED }, { name: 'apl-merge start' });
  log(`demo: registered demo-base, ${models.length} fine-tunes (queued for evaluation) and their tasks; queued merge ${merge.id} (APL) → model demo-apl`);
  return { baseId: base.id, mergeId: merge.id };
}
