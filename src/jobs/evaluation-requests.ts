/**
 * Asking for evaluations: `evaluateModel` scores a registered model on one task or on every
 * registered task it has a head for, and a fine-tune is evaluated when it is registered (in the
 * registration's transaction), so that merges have their inputs' own scores to be compared with.
 */
import { PgBoss } from 'pg-boss';
import { openCheckpoint } from '../engine/checkpoint/checkpoint';
import { splitModelReference } from '../engine/checkpoint/lora';
import { DataRoot } from '../store/data-roots';
import { Model, Prisma, PrismaClient } from '../store/generated/client';
import { insertJobEvent } from '../store/events';
import { TRANSACTION_LIMITS } from '../store/jobs';
import { registerModel, RegisterModelInput, Registrant, RegistryError } from '../store/registry';
import { enqueueJob } from './queue';
import { checkActiveJobs, Requester, SERVER } from './requests';
import { scorableTasks } from './scoring';
import { runnableModel } from './model-reference';

export interface EvaluationRequest {
  modelId: string;
  /** One task; absent: every registered task the model has a head for. */
  taskId?: string;
}

/** The run's row, first event and queued job, inside the caller's transaction. */
async function queueEvaluation(tx: Prisma.TransactionClient, boss: PgBoss, model: Model, what: string, taskId: string | undefined, by: Requester) {
  const run = await tx.evaluationRun.create({ data: { modelId: model.id, taskId: taskId ?? null, createdBy: by.name } });
  await insertJobEvent(tx, { jobKind: 'evaluation', jobId: run.id, phase: 'status', done: 0, total: 0, message: `queued: evaluation of ${model.name} on ${what}`, status: 'QUEUED' });
  await enqueueJob(boss, { kind: 'evaluation', id: run.id }, tx);
  return run;
}

/** What `model` can be scored on, or a BAD_USER_INPUT saying why it cannot. */
async function tasksToScore(prisma: Pick<PrismaClient, 'task' | 'lineageEdge'>, model: { id: string; name: string; checkpoint: { uri: string } }, taskId?: string) {
  const reference = await runnableModel(prisma, model);
  try {
    openCheckpoint(splitModelReference(reference).checkpoint);
  } catch (err) {
    throw new RegistryError('BAD_USER_INPUT', `"${model.name}" cannot be evaluated: ${(err as Error).message}`);
  }
  const found = await scorableTasks(prisma, reference, taskId);
  if ('reason' in found) throw new RegistryError(found.missing ? 'NOT_FOUND' : 'BAD_USER_INPUT', `"${model.name}" cannot be evaluated: ${found.reason}`);
  return found.tasks.map(({ task }) => task);
}

/** Validates and queues an evaluation; refused while one of the same model and task is queued or running. */
export async function requestEvaluation(prisma: PrismaClient, boss: PgBoss, request: EvaluationRequest, by: Requester = SERVER) {
  const model = await prisma.model.findUnique({ where: { id: request.modelId }, include: { checkpoint: true } });
  if (!model) throw new RegistryError('NOT_FOUND', `modelId: model ${request.modelId} does not exist`);
  const tasks = await tasksToScore(prisma, model, request.taskId);
  return prisma.$transaction(async (tx) => {
    await checkActiveJobs(tx, by);
    // One lock per model: two requests at once cannot both find no pending run.
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`apl-merge-evaluation:${model.id}`}))`;
    const pending = await tx.evaluationRun.findFirst({ where: { modelId: model.id, taskId: request.taskId ?? null, status: { in: ['QUEUED', 'RUNNING'] } } });
    if (pending) throw new RegistryError('CONFLICT', `an evaluation of "${model.name}" on ${request.taskId ? `task ${tasks[0].name}` : 'its tasks'} is already ${pending.status} (${pending.id})`);
    return queueEvaluation(tx, boss, model, tasks.map((t) => t.name).join(', '), request.taskId, by);
  }, TRANSACTION_LIMITS);
}

/**
 * Registers a model and, for a fine-tune (or whenever `evaluate` is true), queues its evaluation
 * on every registered task it has a head for, in the same transaction. A fine-tune that cannot be
 * scored (a family the engine cannot run, no matching task) is registered without one, unless
 * `evaluate: true` asked for it: then the registration is refused, naming why. Without a queue
 * (`boss` absent) nothing is evaluated; the caller refuses `evaluate: true` then.
 */
export async function registerAndEvaluate(prisma: PrismaClient, boss: PgBoss | undefined, roots: readonly DataRoot[], input: RegisterModelInput & { evaluate?: boolean | null }, by: Registrant = {}) {
  const wanted = input.evaluate ?? input.kind === 'FINETUNE';
  const { evaluate: _evaluate, ...registration } = input;
  void _evaluate;
  return registerModel(prisma, roots, registration, by, async (tx, created) => {
    if (!wanted || !boss) return;
    const row = await tx.model.findUniqueOrThrow({ where: { id: created.id }, include: { checkpoint: true } });
    let tasks: Awaited<ReturnType<typeof tasksToScore>>;
    try {
      tasks = await tasksToScore(tx, row);
    } catch (err) {
      if (input.evaluate === true) throw err;
      return;
    }
    await queueEvaluation(tx, boss, row, tasks.map((t) => t.name).join(', '), undefined, { name: by.createdBy ?? null });
  });
}
