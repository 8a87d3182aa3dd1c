/** Models and lineage: thin resolvers over src/store. */
import { Arg, Authorized, Ctx, FieldResolver, ID, InputType, Int, Mutation, Query, Resolver, Root, Field } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { ModelKind } from '../store/generated/enums';
import { ancestors, descendants, lineageGraph } from '../store/lineage';
import { findModel, listModels, listTasks, registerTask } from '../store/registry';
import { registerAndEvaluate } from '../jobs/evaluation-requests';
import { archiveModel, deleteModel, updateModel } from '../store/model-lifecycle';
import { listAnalyses, listEvaluationRuns, listMerges } from '../store/jobs';
import { toEvaluationRun } from './evaluation-resolver';
import { toAnalysis } from './analysis-resolver';
import { ApiContext, dataRoots, requireQueue } from './context';
import { toMerge } from './merge-resolver';
import { EvaluationConnection, ImportanceAnalysisConnection, MergeConnection, ModelConnection, ModelFilterInput, ModelOrder, orderOf, TaskConnection, TaskOrder } from './list-types';
import { Connection, decodeCursor, listConnection, pageConnection } from './connections';
import { payloadType } from './payloads';
import { withErrorCodes } from './errors';
import { AnalysisType, CheckpointType, DeletedModelType, EvaluationRunType, EvaluationType, LeaderboardRowType, LineageGraphType, LineageNodeType, LinkType, MergeType, ModelType, TaskType } from './types';
import { leaderboard } from '../store/leaderboard';

@InputType({ description: 'What to change; fields left out stay as they are' })
class UpdateModelInput {
  @Field({ nullable: true }) name?: string;
  @Field({ nullable: true }) description?: string;
  @Field(() => [String], { nullable: true, description: 'replaces the tags' }) tags?: string[];
}

@InputType()
class RegisterTaskInput {
  @Field() name: string;
  @Field({ description: 'the task data (safetensors with a probe split): data://ROOT/relative/path, or an absolute path under a data root' }) path: string;
}

@InputType()
class RegisterModelInput {
  @Field() name: string;
  @Field(() => ModelKind) kind: ModelKind;
  @Field({ description: 'the checkpoint: data://ROOT/relative/path, or an absolute path under a data root' }) path: string;
  @Field(() => [ID], { nullable: true, description: 'the model(s) it derives from (a fine-tune: its base)' }) parentIds?: string[];
  @Field(() => Boolean, { nullable: true, description: 'queue its evaluation on every registered task it has a head for (default: fine-tunes only, when they can be scored); true refuses a model that cannot be' }) evaluate?: boolean | null;
}

function checkDepth(depth: number): void {
  if (!Number.isInteger(depth) || depth < 1 || depth > 64) throw new GraphQLError(`depth must be from 1 to 64, got ${depth}`, { extensions: { code: 'BAD_USER_INPUT', argument: 'depth' } });
}

export const toCheckpoint = (c: { id: string; uri: string; sha256: string; bytes: bigint; dtype: string; parameterCount: bigint; tensorCount: number }): CheckpointType => ({
  ...c,
  bytes: Number(c.bytes),
  parameterCount: Number(c.parameterCount),
});

const RegisterModelPayload = payloadType('RegisterModel', 'model', ModelType, 'The model registered');
const UpdateModelPayload = payloadType('UpdateModel', 'model', ModelType, 'The model as changed');
const ArchiveModelPayload = payloadType('ArchiveModel', 'model', ModelType, 'The model, archived (or brought back)');
const RegisterTaskPayload = payloadType('RegisterTask', 'task', TaskType, 'The task registered');

@Resolver(() => ModelType)
export class ModelResolver {
  @Query(() => ModelConnection, { description: 'models in registration order (or as ordered), filtered, a page at a time' })
  async models(
    @Ctx() { prisma }: ApiContext,
    @Arg('first', () => Int, { defaultValue: 50, description: '1 to 500' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
    @Arg('filter', () => ModelFilterInput, { nullable: true }) filter: ModelFilterInput | undefined,
    @Arg('orderBy', () => ModelOrder, { nullable: true }) orderBy: ModelOrder | undefined,
  ): Promise<Connection<ModelType>> {
    return withErrorCodes(async () => pageConnection(await listModels(prisma, { ...filter }, { first, after: after && decodeCursor('model', after), orderBy: orderOf(orderBy) }), 'model', (m) => m));
  }

  @Query(() => ModelType)
  async model(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<ModelType> {
    const model = await findModel(prisma, id);
    if (!model) throw new GraphQLError(`model ${id} does not exist`, { extensions: { code: 'NOT_FOUND' } });
    return model;
  }

  @Query(() => LineageGraphType, { description: 'the graph below a base model' })
  async lineage(@Ctx() { prisma, startedAt }: ApiContext, @Arg('baseId', () => ID) baseId: string): Promise<LineageGraphType> {
    return lineageGraph(prisma, baseId, undefined, { since: startedAt }).catch((err: Error) => {
      throw new GraphQLError(err.message, { extensions: { code: 'NOT_FOUND' } });
    });
  }

  @Query(() => [LeaderboardRowType], { description: "every model below a base (and the base) with its scores on a split beside the best fine-tune's, ranked by mean normalised score" })
  async leaderboard(@Ctx() { prisma, loaders }: ApiContext, @Arg('baseId', () => ID) baseId: string, @Arg('split', { defaultValue: 'test' }) split: string): Promise<LeaderboardRowType[]> {
    return withErrorCodes(async () => {
      const rows = await leaderboard(prisma, baseId, split);
      return Promise.all(rows.map(async (row) => ({ ...row, model: await loaders.model.load(row.modelId), scores: await Promise.all(row.scores.map(async (s) => ({ ...s, task: await loaders.task.load(s.taskId) }))) })));
    });
  }

  @Authorized('ADMIN')
  @Mutation(() => RegisterModelPayload, { description: 'register a checkpoint on the server as a model (admin); its header is validated and hashed first; a fine-tune is queued for evaluation on its tasks (see evaluationRuns)' })
  async registerModel(@Ctx() context: ApiContext, @Arg('input', () => RegisterModelInput) input: RegisterModelInput): Promise<{ model: ModelType }> {
    return withErrorCodes(async () => {
      const queue = input.evaluate ? requireQueue(context) : context.queue;
      return { model: await registerAndEvaluate(context.prisma, queue, await dataRoots(context), input, { createdBy: context.viewer.name }) };
    });
  }

  @Authorized('ADMIN')
  @Mutation(() => UpdateModelPayload, { description: "changes a model's name, description or tags (admin)" })
  async updateModel(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string, @Arg('input', () => UpdateModelInput) input: UpdateModelInput): Promise<{ model: ModelType }> {
    return withErrorCodes(async () => ({ model: await updateModel(prisma, id, input) }));
  }

  @Authorized('ADMIN')
  @Mutation(() => ArchiveModelPayload, { description: 'archives a model (admin): hidden from listings, lineage kept; archived: false brings it back' })
  async archiveModel(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string, @Arg('archived', { defaultValue: true }) archived: boolean): Promise<{ model: ModelType }> {
    return withErrorCodes(async () => ({ model: await archiveModel(prisma, id, archived) }));
  }

  @Authorized('ADMIN')
  @Mutation(() => DeletedModelType, { description: 'deletes a model from the registry (admin); refused while models or jobs depend on it (archive it instead)' })
  async deleteModel(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<DeletedModelType> {
    return withErrorCodes(async () => {
      const deleted = await deleteModel(prisma, id);
      return { id: deleted.id, name: deleted.name };
    });
  }

  @Authorized('OPERATOR')
  @Mutation(() => RegisterTaskPayload, { description: 'register a task from its data file (operator), validated first' })
  async registerTask(@Ctx() context: ApiContext, @Arg('input', () => RegisterTaskInput) input: RegisterTaskInput): Promise<{ task: TaskType }> {
    return withErrorCodes(async () => ({
      task: await registerTask(context.prisma, await dataRoots(context), input, { createdBy: context.viewer.name, precisePathErrors: context.viewer.role === 'ADMIN' }),
    }));
  }

  @Query(() => TaskConnection, { description: 'registered tasks, by name unless ordered otherwise' })
  async tasks(
    @Ctx() { prisma }: ApiContext,
    @Arg('first', () => Int, { defaultValue: 50, description: '1 to 500' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
    @Arg('nameContains', () => String, { nullable: true }) nameContains: string | undefined,
    @Arg('orderBy', () => TaskOrder, { nullable: true }) orderBy: TaskOrder | undefined,
  ): Promise<Connection<TaskType>> {
    return withErrorCodes(async () => pageConnection(await listTasks(prisma, { nameContains }, { first, after: after && decodeCursor('task', after), orderBy: orderOf(orderBy) }), 'task', (t) => t));
  }

  @FieldResolver(() => [LinkType], { description: 'the models this one derives from' })
  async parents(@Root() model: ModelType, @Ctx() { loaders }: ApiContext): Promise<LinkType[]> {
    return (await loaders.parents.load(model.id)).map((e) => ({ relation: e.relation, weight: e.weight, model: e.parent }));
  }

  @FieldResolver(() => [LinkType], { description: 'the models derived from this one' })
  async children(@Root() model: ModelType, @Ctx() { loaders }: ApiContext): Promise<LinkType[]> {
    return (await loaders.children.load(model.id)).map((e) => ({ relation: e.relation, weight: e.weight, model: e.child }));
  }

  @FieldResolver(() => EvaluationConnection, { description: 'its scores, by task and split (loaded for every model of a request at once)' })
  async evaluations(
    @Root() model: ModelType,
    @Ctx() { loaders }: ApiContext,
    @Arg('first', () => Int, { defaultValue: 20, description: '1 to 500' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
  ): Promise<Connection<EvaluationType>> {
    return withErrorCodes(async () => listConnection(await loaders.evaluations.load(model.id), 'evaluation', (e) => e.id, first, after));
  }

  @FieldResolver(() => ImportanceAnalysisConnection, { description: 'importance analyses of this model, newest first' })
  async analyses(
    @Root() model: ModelType,
    @Ctx() { prisma }: ApiContext,
    @Arg('first', () => Int, { defaultValue: 20, description: '1 to 500' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
  ): Promise<Connection<AnalysisType>> {
    return withErrorCodes(async () => pageConnection(await listAnalyses(prisma, { modelId: model.id }, { first, after: after && decodeCursor('analysis', after) }), 'analysis', toAnalysis));
  }

  @FieldResolver(() => [EvaluationRunType], { description: 'evaluation runs of this model (queued at registration or by evaluateModel), newest first' })
  async evaluationRuns(@Root() model: ModelType, @Ctx() { prisma }: ApiContext, @Arg('first', () => Int, { defaultValue: 50 }) first: number): Promise<EvaluationRunType[]> {
    return withErrorCodes(async () => (await listEvaluationRuns(prisma, { modelId: model.id }, { first })).rows.map(toEvaluationRun));
  }

  @FieldResolver(() => MergeConnection, { description: 'merges this model is an input or the output of, newest first' })
  async merges(
    @Root() model: ModelType,
    @Ctx() { prisma }: ApiContext,
    @Arg('first', () => Int, { defaultValue: 20, description: '1 to 500' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
  ): Promise<Connection<MergeType>> {
    return withErrorCodes(async () => pageConnection(await listMerges(prisma, { modelId: model.id }, { first, after: after && decodeCursor('merge', after) }), 'merge', toMerge));
  }

  @FieldResolver(() => CheckpointType)
  async checkpoint(@Root() model: ModelType, @Ctx() { loaders }: ApiContext): Promise<CheckpointType> {
    return toCheckpoint(await loaders.checkpoint.load(model.checkpointId));
  }

  @FieldResolver(() => [LineageNodeType])
  async ancestors(@Root() model: ModelType, @Ctx() { prisma, startedAt }: ApiContext, @Arg('depth', () => Int, { defaultValue: 10, description: 'generations, 1 to 64' }) depth: number): Promise<readonly LineageNodeType[]> {
    checkDepth(depth);
    return ancestors(prisma, model.id, depth, { since: startedAt });
  }

  @FieldResolver(() => [LineageNodeType])
  async descendants(@Root() model: ModelType, @Ctx() { prisma, startedAt }: ApiContext, @Arg('depth', () => Int, { defaultValue: 10, description: 'generations, 1 to 64' }) depth: number): Promise<readonly LineageNodeType[]> {
    checkDepth(depth);
    return descendants(prisma, model.id, depth, { since: startedAt });
  }
}
