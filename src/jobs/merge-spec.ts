/**
 * A merge as the engine sees it: the rows of a merge request turned into the YAML config that
 * `apl-merge merge` reads. The same function serves the request (validated by planning the merge
 * from headers before anything is queued) and the worker (which runs exactly what was validated).
 */
import { stringify } from 'yaml';
import { Prisma, PrismaClient } from '../store/generated/client';
import { checkpointPath, RegistryError } from '../store/registry';

/** Per-model parameters the platform adds to the engine's: where APL's probe data or importance come from. */
export interface PlatformModelParameters {
  probeTaskId?: string;
  analysisId?: string;
}

export interface MergeSpec {
  id: string;
  method: string;
  seed: number;
  outputName: string;
  /** The engine config (YAML) with absolute paths. */
  configText: string;
  baseModelId: string | undefined;
  /** What NaN/Inf values do: fail the merge (default) or be written with warnings. */
  nonFinite: 'error' | 'warn';
  /** Input models in order, with the weight recorded on their lineage edge. */
  inputs: Array<{ modelId: string; isBase: boolean; weight: number | null }>;
}

type Db = PrismaClient | Prisma.TransactionClient;

async function probePath(db: Db, taskId: string, where: string): Promise<string> {
  const task = await db.task.findUnique({ where: { id: taskId } }).catch(() => null);
  if (!task) throw new RegistryError('NOT_FOUND', `${where}: probe task ${taskId} does not exist`);
  return checkpointPath(task.dataUri);
}

async function importancePath(db: Db, analysisId: string, where: string): Promise<string> {
  const analysis = await db.importanceAnalysis.findUnique({ where: { id: analysisId } }).catch(() => null);
  if (!analysis) throw new RegistryError('NOT_FOUND', `${where}: analysis ${analysisId} does not exist`);
  if (analysis.status !== 'COMPLETED' || !analysis.artifactUri) throw new RegistryError('BAD_USER_INPUT', `${where}: analysis ${analysisId} is ${analysis.status}, not COMPLETED`);
  return checkpointPath(analysis.artifactUri);
}

/** Reads a merge's rows and builds its engine config. */
export async function loadMergeSpec(db: Db, mergeId: string): Promise<MergeSpec> {
  const merge = await db.merge.findUniqueOrThrow({ where: { id: mergeId }, include: { inputs: { include: { model: { include: { checkpoint: true } } }, orderBy: { position: 'asc' } } } });
  const base = merge.inputs.find((i) => i.isBase);
  const models: Array<{ model: string; parameters?: Record<string, unknown> }> = [];
  const inputs: MergeSpec['inputs'] = [];
  for (const input of merge.inputs) {
    const { probeTaskId, analysisId, ...engineParameters } = (input.parameters ?? {}) as Record<string, unknown> & PlatformModelParameters;
    const where = `models[${input.position - (base ? 1 : 0)}] (${input.model.name})`;
    if (probeTaskId) engineParameters.probe = await probePath(db, probeTaskId, where);
    if (analysisId) engineParameters.importance = await importancePath(db, analysisId, where);
    const weight = typeof engineParameters.weight === 'number' ? engineParameters.weight : null;
    inputs.push({ modelId: input.modelId, isBase: input.isBase, weight });
    if (input.isBase) continue;
    models.push({ model: checkpointPath(input.model.checkpoint.uri), ...(Object.keys(engineParameters).length > 0 ? { parameters: engineParameters } : {}) });
  }
  const { dtype, parameters, nonFinite } = merge.parameters as { dtype?: string; parameters?: Record<string, unknown>; nonFinite?: 'warn' };
  const config: Record<string, unknown> = { merge_method: merge.method };
  if (base) config.base_model = checkpointPath(base.model.checkpoint.uri);
  config.models = models;
  if (parameters && Object.keys(parameters).length > 0) config.parameters = parameters;
  if (dtype) config.dtype = dtype;
  config.seed = Number(merge.seed);
  return {
    id: merge.id,
    method: merge.method,
    seed: Number(merge.seed),
    outputName: merge.outputName ?? `merge-${merge.id.slice(0, 8)}`,
    configText: stringify(config),
    baseModelId: base?.modelId,
    nonFinite: nonFinite === 'warn' ? 'warn' : 'error',
    inputs,
  };
}
