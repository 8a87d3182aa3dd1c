/** Evaluation runs: ask for one, read them, follow their model and task. */
import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { requestEvaluation } from '../jobs/evaluation-requests';
import { listEvaluationRuns } from '../store/jobs';
import { ApiContext, requesterOf, requireQueue } from './context';
import { EvaluationRunConnection, jobPage, JobListArgs } from './list-types';
import { Connection, pageConnection } from './connections';
import { payloadType } from './payloads';
import { withErrorCodes } from './errors';
import { EvaluationRunType, ModelType, TaskType, jobTiming, JobTimingType } from './types';

export const toEvaluationRun = (row: { result: unknown } & Omit<EvaluationRunType, 'result'>): EvaluationRunType => ({ ...row, result: (row.result as Record<string, unknown> | null) ?? null });

const EvaluateModelPayload = payloadType('EvaluateModel', 'evaluationRun', EvaluationRunType, 'The evaluation run, QUEUED');

@Resolver(() => EvaluationRunType)
export class EvaluationResolver {
  @FieldResolver(() => JobTimingType)
  timing(@Root() job: Parameters<typeof jobTiming>[0]): JobTimingType {
    return jobTiming(job);
  }

  @Authorized('OPERATOR')
  @Mutation(() => EvaluateModelPayload, { description: "queues scoring a model on one task, or on every registered task it has a head for (test and OOD splits); its scores replace the model's earlier ones" })
  async evaluateModel(@Ctx() context: ApiContext, @Arg('modelId', () => ID) modelId: string, @Arg('taskId', () => ID, { nullable: true }) taskId?: string): Promise<{ evaluationRun: EvaluationRunType }> {
    return withErrorCodes(async () => ({ evaluationRun: toEvaluationRun(await requestEvaluation(context.prisma, requireQueue(context), { modelId, taskId: taskId ?? undefined }, requesterOf(context))) }));
  }

  @Query(() => EvaluationRunType)
  async evaluationRun(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<EvaluationRunType> {
    const row = await prisma.evaluationRun.findUnique({ where: { id } });
    if (!row) throw new GraphQLError(`evaluation run ${id} does not exist`, { extensions: { code: 'NOT_FOUND' } });
    return toEvaluationRun(row);
  }

  @Query(() => EvaluationRunConnection, { description: 'evaluation runs, newest first unless ordered otherwise' })
  async evaluationRuns(
    @Ctx() { prisma }: ApiContext,
    @Args() args: JobListArgs,
  ): Promise<Connection<EvaluationRunType>> {
    return withErrorCodes(async () => pageConnection(await listEvaluationRuns(prisma, { ...args.filter }, jobPage(args, 'evaluationRun')), 'evaluationRun', toEvaluationRun));
  }

  @FieldResolver(() => ModelType)
  async model(@Root() run: EvaluationRunType, @Ctx() { loaders }: ApiContext): Promise<ModelType> {
    return loaders.model.load(run.modelId);
  }

  @FieldResolver(() => TaskType, { nullable: true, description: 'the task asked for; null: every registered task the model has a head for' })
  async task(@Root() run: EvaluationRunType, @Ctx() { loaders }: ApiContext): Promise<TaskType | null> {
    return run.taskId ? loaders.task.load(run.taskId) : null;
  }
}
