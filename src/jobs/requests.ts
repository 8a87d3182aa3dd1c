/**
 * Starting and cancelling jobs. A start validates everything that can be checked from headers
 * (models exist, the method and its parameters, homologous checkpoints, probe data that fits the
 * heads), then writes the QUEUED row, its inputs, its first event and the queued job in one
 * transaction: a request that fails leaves no row and no job behind.
 */
import { PgBoss } from 'pg-boss';
import { Listener, listenOn } from '../store/notifications';
import { parseMergeConfig } from '../engine/merge/config';
import { planMerge } from '../engine/merge/plan';
import { getMergeMethod } from '../engine/methods/registry';
import { modelFamilyOfReference } from '../engine/families/model';
import { headMismatch } from '../engine/families/types';
import { runnableModel } from './model-reference';
import { PARTITION_LEVELS, PartitionLevel } from '../engine/apl/partitions';
import { Prisma, PrismaClient } from '../store/generated/client';
import { JobStatus } from '../store/generated/enums';
import { insertJobEvent } from '../store/events';
import { ancestors } from '../store/lineage';
import { FINAL_STATUSES, JobKind, jobKindOf, TRANSACTION_LIMITS, transitionJob } from '../store/jobs';
import { checkName, checkpointPath, RegistryError, uniquely } from '../store/registry';
import { loadMergeSpec, PlatformModelParameters } from './merge-spec';
import { isPermanent } from './outputs';
import { dequeueJob, enqueueJob, requeueJob } from './queue';
import { inputsMismatch } from './scoring';

/** The channel on which a cancel reaches the worker running the job. */
export const CANCEL_CHANNEL = 'apl_merge_job_cancel';

export interface MergeRequest {
  /** Name of the merged model (default: merge-<first 8 characters of the merge id>). */
  name?: string;
  method: string;
  baseModelId?: string;
  models: Array<{ modelId: string; parameters?: Record<string, unknown> } & PlatformModelParameters>;
  /** The method's global parameters, as in the YAML config's `parameters`. */
  parameters?: Record<string, unknown>;
  /** NaN/Inf in inputs or merged values: fail (default) or write and warn (recorded with the merge). */
  nonFinite?: 'warn';
  /** Merge against a base that is not an ancestor of every input (recorded with the merge). */
  allowUnrelatedBase?: boolean;
  /** Seed of every random choice (DARE drops, APL's stochastic variant); recorded with the merge. Default 0. */
  seed?: number;
  dtype?: string;
}

/** Who asks for a job: recorded as its `createdBy`; `maxActiveJobs` bounds their QUEUED and RUNNING jobs. */
export interface Requester {
  name: string | null;
  maxActiveJobs?: number;
}

export const SERVER: Requester = { name: null };

/**
 * Refuses a new job when the requester already has `maxActiveJobs` queued or running. The count is
 * taken under a transaction lock per requester, so concurrent requests cannot all slip under it.
 */
export async function checkActiveJobs(tx: Prisma.TransactionClient, by: Requester): Promise<void> {
  if (by.name === null || by.maxActiveJobs === undefined) return;
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`apl-merge-jobs:${by.name}`}))`;
  const active = { createdBy: by.name, status: { in: ['QUEUED', 'RUNNING'] as JobStatus[] } };
  const count = (await tx.merge.count({ where: active })) + (await tx.importanceAnalysis.count({ where: active })) + (await tx.evaluationRun.count({ where: active }));
  if (count >= by.maxActiveJobs) throw new RegistryError('RATE_LIMITED', `token "${by.name}" already has ${count} queued or running job(s), the most it may have at once; wait for one to finish or cancel one`);
}

/**
 * What can be checked of a merge's inputs before anything is written: the models exist (the base
 * named on its own), the base is an ancestor of every input unless the request allows an unrelated
 * one, and an APL probe task is one the model has a head for.
 */
async function checkMergeInputs(prisma: PrismaClient, request: MergeRequest): Promise<void> {
  if (request.baseModelId && !(await prisma.model.findUnique({ where: { id: request.baseModelId }, select: { id: true } }))) {
    throw new RegistryError('NOT_FOUND', `baseModelId: base model ${request.baseModelId} does not exist`);
  }
  const ids = request.models.map((m) => m.modelId);
  const found = await prisma.model.findMany({ where: { id: { in: ids } }, include: { checkpoint: true } });
  const missing = [...new Set(ids.filter((id) => !found.some((m) => m.id === id)))];
  if (missing.length > 0) throw new RegistryError('NOT_FOUND', `models: model(s) ${missing.join(', ')} do not exist`);
  for (const [i, input] of request.models.entries()) {
    const model = found.find((m) => m.id === input.modelId)!;
    if (request.baseModelId && !request.allowUnrelatedBase) {
      const lineage = await ancestors(prisma, model.id, 32);
      if (!lineage.some((a) => a.id === request.baseModelId)) {
        throw new RegistryError('BAD_USER_INPUT', `models[${i}]: the base ${request.baseModelId} is not an ancestor of "${model.name}"; merge against its base, or pass allowUnrelatedBase: true`);
      }
    }
    if (input.probeTaskId) {
      const task = await prisma.task.findUnique({ where: { id: input.probeTaskId } });
      if (!task) throw new RegistryError('NOT_FOUND', `models[${i}].probeTaskId: task ${input.probeTaskId} does not exist`);
      const family = modelFamilyOfCheckpoint(await runnableModel(prisma, model));
      if ('unknown' in family) throw new RegistryError('BAD_USER_INPUT', `models[${i}].probeTaskId: "${model.name}" cannot be scored on probe data: ${family.unknown}`);
      const heads = headMismatch(family.config, task);
      if (heads) throw new RegistryError('BAD_USER_INPUT', `models[${i}].probeTaskId: model "${model.name}": ${heads}`);
      const mismatch = inputsMismatch(family, task, ['probe']);
      if (mismatch) throw new RegistryError('BAD_USER_INPUT', `models[${i}].probeTaskId: ${mismatch}`);
    }
  }
}

const modelFamilyOfCheckpoint = (reference: string) => {
  try {
    return modelFamilyOfReference(reference);
  } catch (err) {
    throw new RegistryError('BAD_USER_INPUT', (err as Error).message);
  }
};

/** The engine's errors about configs and checkpoints are the caller's input errors. */
const inputProblem = (err: unknown): never => {
  if (isPermanent(err)) throw new RegistryError('BAD_USER_INPUT', (err as Error).message);
  throw err;
};

export async function requestMerge(prisma: PrismaClient, boss: PgBoss, request: MergeRequest, by: Requester = SERVER) {
  try {
    getMergeMethod(request.method);
  } catch (err) {
    throw new RegistryError('BAD_USER_INPUT', (err as Error).message);
  }
  if (request.models.length === 0) throw new RegistryError('BAD_USER_INPUT', 'models: a merge needs at least one model');
  const seed = request.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RegistryError('BAD_USER_INPUT', `seed must be a non-negative integer, got ${seed}`);
  await checkMergeInputs(prisma, request);
  if (request.name !== undefined && request.name !== null) checkName('name', request.name);

  return prisma.$transaction(async (tx) => {
    await checkActiveJobs(tx, by);
    // The name is reserved by this row (a unique index over queued and running merges' names), in the transaction that checks it is free.
    if (request.name && (await tx.model.findUnique({ where: { name: request.name } }))) throw new RegistryError('CONFLICT', `a model named "${request.name}" already exists`);
    const merge = await uniquely(`a queued or running merge producing a model named "${request.name}"`, () => tx.merge.create({
      data: {
        createdBy: by.name,
        method: request.method,
        parameters: { parameters: (request.parameters ?? {}) as Prisma.InputJsonObject, ...(request.dtype ? { dtype: request.dtype } : {}), ...(request.allowUnrelatedBase ? { allowUnrelatedBase: true } : {}), ...(request.nonFinite ? { nonFinite: request.nonFinite } : {}) },
        seed: BigInt(seed),
        outputName: request.name ?? null,
      },
    }));
    const inputs = [
      ...(request.baseModelId ? [{ modelId: request.baseModelId, isBase: true, parameters: {} }] : []),
      ...request.models.map((m) => ({
        modelId: m.modelId,
        isBase: false,
        parameters: { ...(m.parameters ?? {}), ...(m.probeTaskId ? { probeTaskId: m.probeTaskId } : {}), ...(m.analysisId ? { analysisId: m.analysisId } : {}) },
      })),
    ];
    await tx.mergeInput.createMany({ data: inputs.map((input, position) => ({ ...input, mergeId: merge.id, position, parameters: input.parameters as Prisma.InputJsonObject })) });
    // Validate exactly what the worker will run: the engine plans the merge from headers alone.
    const spec = await loadMergeSpec(tx, merge.id);
    try {
      planMerge(parseMergeConfig(spec.configText, 'the merge request', '/'));
    } catch (err) {
      inputProblem(err);
    }
    await insertJobEvent(tx, { jobKind: 'merge', jobId: merge.id, phase: 'status', done: 0, total: 0, message: `queued: ${request.method} of ${request.models.length} model(s)`, status: 'QUEUED' });
    await enqueueJob(boss, { kind: 'merge', id: merge.id }, tx);
    return merge;
  }, TRANSACTION_LIMITS);
}

export interface AnalysisRequest {
  modelId: string;
  taskId: string;
  level: string;
  estimator: string;
  /** The model measured against (default: the model's BASE ancestor). */
  baseModelId?: string;
}

/** The nearest BASE model the given one descends from (the lineage walk of the store). */
async function baseOf(prisma: PrismaClient, modelId: string): Promise<string> {
  const base = (await ancestors(prisma, modelId, 32)).find((node) => node.kind === 'BASE');
  if (!base) throw new RegistryError('BAD_USER_INPUT', `model ${modelId} has no BASE ancestor; pass baseModelId`);
  return base.id;
}

export async function requestAnalysis(prisma: PrismaClient, boss: PgBoss, request: AnalysisRequest, by: Requester = SERVER) {
  if (!PARTITION_LEVELS.includes(request.level as PartitionLevel)) throw new RegistryError('BAD_USER_INPUT', `level "${request.level}" is not one of ${PARTITION_LEVELS.join(', ')}`);
  if (request.estimator !== 'exact' && request.estimator !== 'gradient') throw new RegistryError('BAD_USER_INPUT', `estimator "${request.estimator}" is not one of exact, gradient`);
  const model = await prisma.model.findUnique({ where: { id: request.modelId }, include: { checkpoint: true } }).catch(() => null);
  if (!model) throw new RegistryError('NOT_FOUND', `model ${request.modelId} does not exist`);
  const task = await prisma.task.findUnique({ where: { id: request.taskId } }).catch(() => null);
  if (!task) throw new RegistryError('NOT_FOUND', `task ${request.taskId} does not exist`);
  const baseModelId = request.baseModelId ?? (await baseOf(prisma, model.id));
  const base = await prisma.model.findUnique({ where: { id: baseModelId }, include: { checkpoint: true } }).catch(() => null);
  if (!base) throw new RegistryError('NOT_FOUND', `base model ${baseModelId} does not exist`);
  const reference = await runnableModel(prisma, model);
  try {
    const family = modelFamilyOfReference(reference);
    if ('unknown' in family) throw new RegistryError('BAD_USER_INPUT', `model "${model.name}" cannot be analysed: ${family.unknown}`);
    const found = family;
    const heads = headMismatch(found.config, task);
    if (heads) throw new RegistryError('BAD_USER_INPUT', `model "${model.name}": ${heads}`);
    const mismatch = inputsMismatch(found, task, ['probe']);
    if (mismatch) throw new RegistryError('BAD_USER_INPUT', `taskId: ${mismatch}`);
    planMerge(parseMergeConfig(`merge_method: task_arithmetic\nbase_model: ${JSON.stringify(checkpointPath(base.checkpoint.uri))}\nmodels:\n  - model: ${JSON.stringify(reference)}\n    parameters: { weight: 1 }\n`, 'the analysis request', '/'));
  } catch (err) {
    // Headers, config.json and homology: whatever is wrong there is the caller's input.
    if (err instanceof RegistryError) throw err;
    throw new RegistryError('BAD_USER_INPUT', (err as Error).message);
  }
  return prisma.$transaction(async (tx) => {
    await checkActiveJobs(tx, by);
    const analysis = await tx.importanceAnalysis.create({ data: { createdBy: by.name, modelId: model.id, taskId: task.id, baseModelId, level: request.level, estimator: request.estimator } });
    await insertJobEvent(tx, { jobKind: 'analysis', jobId: analysis.id, phase: 'status', done: 0, total: 0, message: `queued: ${request.estimator} importance of ${model.name} on ${task.name} (${request.level} level)`, status: 'QUEUED' });
    await enqueueJob(boss, { kind: 'analysis', id: analysis.id }, tx);
    return analysis;
  }, TRANSACTION_LIMITS);
}

/**
 * Cancels a queued or running job: the row becomes CANCELLED at once (so a worker that picks the
 * job up later skips it, and one that finishes it discards its output), the worker running it is
 * told over NOTIFY and stops the engine through its AbortSignal.
 */
export async function cancelJob(prisma: PrismaClient, boss: PgBoss, id: string, by: Requester & { anyJob?: boolean } = { name: null, anyJob: true }): Promise<JobKind> {
  const job = await jobKindOf(prisma, id).catch(() => undefined);
  if (!job) throw new RegistryError('NOT_FOUND', `no merge, analysis or evaluation has id ${id}`);
  if (!by.anyJob && job.createdBy !== by.name) throw new RegistryError('FORBIDDEN', `job ${id} was started by ${job.createdBy ? `token "${job.createdBy}"` : 'the server'}; only its owner or an admin may cancel it`);
  if (FINAL_STATUSES.includes(job.status)) throw new RegistryError('CONFLICT', `job ${id} is already ${job.status}`);
  const cancelled = await transitionJob(prisma, job.kind, id, { from: ['QUEUED', 'RUNNING'], to: 'CANCELLED', message: 'cancelled on request' }, async (tx) => {
    await tx.$executeRaw`SELECT pg_notify(${CANCEL_CHANNEL}, ${id})`;
  });
  if (!cancelled) throw new RegistryError('CONFLICT', `job ${id} finished before it could be cancelled`);
  await dequeueJob(boss, { kind: job.kind, id });
  return job.kind;
}

/** Listens for cancels on a connection of its own; `onReconnect` when a lost connection is back (a cancel may have been missed). */
export async function listenForCancels(url: string, onCancel: (id: string) => void, onReconnect?: () => void): Promise<Listener> {
  return listenOn(url, CANCEL_CHANNEL, onCancel, { onReconnect });
}

/**
 * Queues a FAILED or CANCELLED job again, as it was requested (same parameters and seed): its row
 * goes back to QUEUED with an event, under the requester's active-job limit and, for a merge, its
 * output name's reservation. Only its owner or an admin may retry it.
 */
export async function retryJob(prisma: PrismaClient, boss: PgBoss, id: string, by: Requester & { anyJob?: boolean } = { name: null, anyJob: true }): Promise<JobKind> {
  const job = await jobKindOf(prisma, id);
  if (!job) throw new RegistryError('NOT_FOUND', `no merge, analysis or evaluation has id ${id}`);
  if (!by.anyJob && job.createdBy !== by.name) throw new RegistryError('FORBIDDEN', `job ${id} was started by ${job.createdBy ? `token "${job.createdBy}"` : 'the server'}; only its owner or an admin may retry it`);
  if (job.status !== 'FAILED' && job.status !== 'CANCELLED') throw new RegistryError('CONFLICT', `job ${id} is ${job.status}; only a FAILED or CANCELLED job can be retried`);
  await prisma.$transaction(async (tx) => {
    await checkActiveJobs(tx, by);
    if (job.kind === 'merge') {
      const { outputName } = await tx.merge.findUniqueOrThrow({ where: { id }, select: { outputName: true } });
      if (outputName && (await tx.model.findUnique({ where: { name: outputName } }))) throw new RegistryError('CONFLICT', `a model named "${outputName}" exists now; the merge cannot produce another`);
    }
    const queued = await uniquely(`a queued or running merge producing this merge's model name`, () =>
      transitionJob(tx, job.kind, id, { from: ['FAILED', 'CANCELLED'], to: 'QUEUED', message: `queued again on request${by.name ? ` of token "${by.name}"` : ''}`, error: null }),
    );
    if (!queued) throw new RegistryError('CONFLICT', `job ${id} changed meanwhile; look again`);
    await requeueJob(boss, { kind: job.kind, id }, tx);
  }, TRANSACTION_LIMITS);
  return job.kind;
}
