/** Importance analyses: start one, list them, follow their model, task and base. */
import { Arg, Args, Authorized, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { requestAnalysis } from '../jobs/requests';
import { listAnalyses } from '../store/jobs';
import { ApiContext, requesterOf, requireQueue } from './context';
import { ImportanceAnalysisConnection, jobPage, JobListArgs } from './list-types';
import { Connection, pageConnection } from './connections';
import { payloadType } from './payloads';
import { withErrorCodes } from './errors';
import { EstimatorEnum, PartitionLevelEnum } from './enums';
import { AnalysisType, HistogramBinType, ImportanceScore, LayerImportanceType, ModelType, TaskType, jobTiming, JobTimingType } from './types';
import { ImportanceArtifact } from '../engine/apl/artifact';
import type { Loaders } from './loaders';
import { histogram, layerImportance, partitionNames } from '../engine/apl/statistics';
import { checkpointPath } from '../store/registry';

@InputType()
class StartAnalysisInput {
  @Field(() => ID, { description: 'the fine-tune (or merge) to measure' }) modelId: string;
  @Field(() => ID, { description: 'the task whose probe split is used; the model needs a head of that name' }) taskId: string;
  @Field(() => PartitionLevelEnum, { defaultValue: PartitionLevelEnum.ROW }) level: PartitionLevelEnum;
  @Field(() => EstimatorEnum, { defaultValue: EstimatorEnum.EXACT }) estimator: EstimatorEnum;
  @Field(() => ID, { nullable: true, description: "default: the model's BASE ancestor" }) baseModelId?: string;
}

export const toAnalysis = (row: { summary: unknown; result: unknown } & Omit<AnalysisType, 'summary' | 'result'>): AnalysisType => ({
  ...row,
  summary: (row.summary as Record<string, unknown> | null) ?? null,
  result: (row.result as Record<string, unknown> | null) ?? null,
});

/** A completed analysis's artifact and its partition names; null before it completes. */
async function completedArtifact(analysis: AnalysisType, loaders: Loaders): Promise<{ artifact: ImportanceArtifact; names: string[] } | null> {
  if (analysis.status !== 'COMPLETED' || !analysis.artifactUri) return null;
  const path = checkpointPath(analysis.artifactUri);
  try {
    const artifact = await loaders.artifact.load(path);
    return { artifact, names: partitionNames(artifact, path) };
  } catch (err) {
    throw new GraphQLError(`the analysis's artifact cannot be read: ${(err as Error).message}`, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  }
}

/** The scores (and partition names) of a completed analysis's artifact; null before it completes. */
async function artifactScores(analysis: AnalysisType, score: ImportanceScore, loaders: Loaders): Promise<{ names: string[]; values: Float64Array } | null> {
  const completed = await completedArtifact(analysis, loaders);
  if (!completed) return null;
  const values = completed.artifact.scores[score];
  if (!values) {
    throw new GraphQLError(`score: analysis ${analysis.id} (${analysis.estimator}) has no ${score} scores; it has ${Object.keys(completed.artifact.scores).join(', ')}`, { extensions: { code: 'BAD_USER_INPUT', argument: 'score' } });
  }
  return { names: completed.names, values };
}

const StartAnalysisPayload = payloadType('StartAnalysis', 'analysis', AnalysisType, 'The analysis, QUEUED');

@Resolver(() => AnalysisType)
export class AnalysisResolver {
  @FieldResolver(() => JobTimingType)
  timing(@Root() job: Parameters<typeof jobTiming>[0]): JobTimingType {
    return jobTiming(job);
  }

  @Authorized('OPERATOR')
  @Mutation(() => StartAnalysisPayload, { description: 'validates the request, queues the analysis and returns it QUEUED at once' })
  async startAnalysis(@Ctx() context: ApiContext, @Arg('input', () => StartAnalysisInput) input: StartAnalysisInput): Promise<{ analysis: AnalysisType }> {
    return withErrorCodes(async () => ({ analysis: toAnalysis(await requestAnalysis(context.prisma, requireQueue(context), input, requesterOf(context))) }));
  }

  @Query(() => AnalysisType)
  async analysis(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<AnalysisType> {
    const row = await prisma.importanceAnalysis.findUnique({ where: { id } }).catch(() => null);
    if (!row) throw new GraphQLError(`analysis ${id} does not exist`, { extensions: { code: 'NOT_FOUND' } });
    return toAnalysis(row);
  }

  @Query(() => ImportanceAnalysisConnection, { description: 'importance analyses, newest first unless ordered otherwise' })
  async analyses(
    @Ctx() { prisma }: ApiContext,
    @Args() args: JobListArgs,
  ): Promise<Connection<AnalysisType>> {
    return withErrorCodes(async () => pageConnection(await listAnalyses(prisma, { ...args.filter }, jobPage(args, 'analysis')), 'analysis', toAnalysis));
  }

  @FieldResolver(() => ModelType)
  async model(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<ModelType> {
    return loaders.model.load(analysis.modelId);
  }

  @FieldResolver(() => ModelType, { nullable: true })
  async baseModel(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<ModelType | null> {
    return analysis.baseModelId ? loaders.model.load(analysis.baseModelId) : null;
  }

  @FieldResolver(() => [ImportanceScore], { nullable: true, description: 'the scores its artifact holds, which layers and histogram can be asked for (exact: loss increase, KL; gradient: signed, absolute); null until COMPLETED' })
  async scores(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<ImportanceScore[] | null> {
    const completed = await completedArtifact(analysis, loaders);
    return completed && Object.values(ImportanceScore).filter((score) => completed.artifact.scores[score] !== undefined);
  }

  @FieldResolver(() => [LayerImportanceType], { nullable: true, description: 'per layer: mean, spread, min, max and top partitions of a score (null until COMPLETED)' })
  async layers(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext, @Arg('score', () => ImportanceScore, { defaultValue: ImportanceScore.LOSS_INCREASE }) score: ImportanceScore, @Arg('top', () => Int, { defaultValue: 5, description: '0 to 50' }) top: number): Promise<LayerImportanceType[] | null> {
    if (!Number.isInteger(top) || top < 0 || top > 50) throw new GraphQLError(`top must be from 0 to 50, got ${top}`, { extensions: { code: 'BAD_USER_INPUT', argument: 'top' } });
    const scores = await artifactScores(analysis, score, loaders);
    return scores && layerImportance(scores.names, scores.values, top);
  }

  @FieldResolver(() => [HistogramBinType], { nullable: true, description: 'the partitions\' scores in equal-width bins from the smallest to the largest (null until COMPLETED)' })
  async histogram(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext, @Arg('score', () => ImportanceScore, { defaultValue: ImportanceScore.LOSS_INCREASE }) score: ImportanceScore, @Arg('bins', () => Int, { defaultValue: 20, description: '1 to 1000' }) bins: number): Promise<HistogramBinType[] | null> {
    if (!Number.isInteger(bins) || bins < 1 || bins > 1000) throw new GraphQLError(`bins must be from 1 to 1000, got ${bins}`, { extensions: { code: 'BAD_USER_INPUT', argument: 'bins' } });
    const scores = await artifactScores(analysis, score, loaders);
    return scores && histogram(scores.values, bins);
  }

  @FieldResolver(() => TaskType)
  async task(@Root() analysis: AnalysisType, @Ctx() { loaders }: ApiContext): Promise<TaskType> {
    return loaders.task.load(analysis.taskId);
  }
}
