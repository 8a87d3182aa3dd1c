/** Importance analyses: start one, list them, follow their model, task and base. */
import { Arg, Authorized, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { requestAnalysis } from '../jobs/requests';
import { JobStatus } from '../store/generated/enums';
import { listAnalyses } from '../store/jobs';
import { ApiContext, requesterOf, requireQueue } from './context';
import { withErrorCodes } from './errors';
import { AnalysisType, ModelType, TaskType } from './types';

@InputType()
class StartAnalysisInput {
  @Field(() => ID, { description: 'the fine-tune (or merge) to measure' }) modelId: string;
  @Field(() => ID, { description: 'the task whose probe split is used; the model needs a head of that name' }) taskId: string;
  @Field({ defaultValue: 'row', description: 'partition level: model, layer or row' }) level: string;
  @Field({ defaultValue: 'exact', description: 'exact (causal intervention) or gradient (approximation)' }) estimator: string;
  @Field(() => ID, { nullable: true, description: "default: the model's BASE ancestor" }) baseModelId?: string;
}

export const toAnalysis = (row: { summary: unknown; result: unknown } & Omit<AnalysisType, 'summary' | 'result'>): AnalysisType => ({
  ...row,
  summary: (row.summary as Record<string, unknown> | null) ?? null,
  result: (row.result as Record<string, unknown> | null) ?? null,
});

@Resolver(() => AnalysisType)
export class AnalysisResolver {
  @Authorized('OPERATOR')
  @Mutation(() => AnalysisType, { description: 'validates the request, queues the analysis and returns it QUEUED at once' })
  async startAnalysis(@Ctx() context: ApiContext, @Arg('input', () => StartAnalysisInput) input: StartAnalysisInput): Promise<AnalysisType> {
    return withErrorCodes(async () => toAnalysis(await requestAnalysis(context.prisma, requireQueue(context), input, requesterOf(context))));
  }

  @Query(() => AnalysisType)
  async analysis(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<AnalysisType> {
    const row = await prisma.importanceAnalysis.findUnique({ where: { id } }).catch(() => null);
    if (!row) throw new GraphQLError(`analysis ${id} does not exist`, { extensions: { code: 'NOT_FOUND' } });
    return toAnalysis(row);
  }

  @Query(() => [AnalysisType], { description: 'importance analyses, newest first' })
  async analyses(
    @Ctx() { prisma }: ApiContext,
    @Arg('status', () => JobStatus, { nullable: true }) status: JobStatus | undefined,
    @Arg('first', () => Int, { defaultValue: 50 }) first: number,
  ): Promise<AnalysisType[]> {
    return withErrorCodes(async () => (await listAnalyses(prisma, { status }, first)).map(toAnalysis));
  }

  @FieldResolver(() => ModelType)
  async model(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<ModelType> {
    return loaders.model.load(analysis.modelId);
  }

  @FieldResolver(() => ModelType, { nullable: true })
  async baseModel(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<ModelType | null> {
    return analysis.baseModelId ? loaders.model.load(analysis.baseModelId) : null;
  }

  @FieldResolver(() => TaskType)
  async task(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<TaskType> {
    return loaders.task.load(analysis.taskId);
  }
}
