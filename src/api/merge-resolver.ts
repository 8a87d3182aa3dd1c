/** Merges: start one (any engine method, APL included), list them, follow their inputs and output. */
import { Arg, Args, Authorized, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, Query, registerEnumType, Resolver, Root } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { GraphQLJSONObject } from 'graphql-scalars';
import { requestMerge } from '../jobs/requests';
import { getMergeMethod } from '../engine/methods/registry';
import { listMerges } from '../store/jobs';
import { ApiContext, requesterOf, requireQueue } from './context';
import { jobPage, JobListArgs, MergeConnection } from './list-types';
import { Connection, pageConnection } from './connections';
import { payloadType } from './payloads';
import { withErrorCodes } from './errors';
import { OutputDtypeEnum } from './enums';
import { MergeInputType, MergeType, ModelType, jobTiming, JobTimingType } from './types';

export enum NonFiniteMode {
  ERROR = 'ERROR',
  WARN = 'WARN',
}
registerEnumType(NonFiniteMode, { name: 'NonFiniteMode', description: 'what a merge does with NaN/Inf values' });

@InputType({ description: 'A model to merge and its parameters' })
class MergeModelInput {
  @Field(() => ID) modelId: string;
  @Field(() => GraphQLJSONObject, { nullable: true, description: "the method's per-model parameters, e.g. { weight: 1, density: 0.5 }" }) parameters?: Record<string, unknown>;
  @Field(() => ID, { nullable: true, description: "APL: the task whose probe split measures this model's importance" }) probeTaskId?: string;
  @Field(() => ID, { nullable: true, description: 'APL: a COMPLETED analysis of this model to take importance from' }) analysisId?: string;
}

@InputType()
class StartMergeInput {
  @Field({ nullable: true, description: 'name of the merged model (default merge-<id prefix>)' }) name?: string;
  @Field({ description: 'an engine merge method: see the methods query (linear, ties, dare_ties, apl, …)' }) method: string;
  @Field(() => ID, { nullable: true }) baseModelId?: string;
  @Field(() => [MergeModelInput]) models: MergeModelInput[];
  @Field(() => GraphQLJSONObject, { nullable: true, description: "the method's global parameters" }) parameters?: Record<string, unknown>;
  @Field(() => Int, { nullable: true, description: 'seed of every random choice (default 0); recorded with the merge' }) seed?: number;
  @Field(() => OutputDtypeEnum, { nullable: true }) dtype?: string;
  @Field({ nullable: true, description: 'merge against a base that is not an ancestor of every model (recorded with the merge); default false' }) allowUnrelatedBase?: boolean;
  @Field(() => NonFiniteMode, { nullable: true, description: 'NaN/Inf in an input or in the merged values: ERROR (default) fails the merge naming the tensor; WARN writes it and records warnings in the result' }) nonFinite?: NonFiniteMode;
}

export const toMerge = (row: { seed: bigint; parameters: unknown; result: unknown } & Omit<MergeType, 'seed' | 'parameters' | 'result'>): MergeType => ({
  ...row,
  seed: Number(row.seed),
  parameters: row.parameters as Record<string, unknown>,
  result: (row.result as Record<string, unknown> | null) ?? null,
});

const StartMergePayload = payloadType('StartMerge', 'merge', MergeType, 'The merge, QUEUED');

/** Requested parameters over the method's defaults for those not given. */
function withDefaults(defs: ReadonlyArray<{ name: string; default?: unknown }>, requested: Record<string, unknown>): Record<string, unknown> {
  const resolved: Record<string, unknown> = {};
  for (const def of defs) if (def.default !== undefined) resolved[def.name] = def.default;
  return { ...resolved, ...requested };
}

@Resolver(() => MergeType)
export class MergeResolver {
  @FieldResolver(() => JobTimingType)
  timing(@Root() job: Parameters<typeof jobTiming>[0]): JobTimingType {
    return jobTiming(job);
  }

  @Authorized('OPERATOR')
  @Mutation(() => StartMergePayload, { description: 'validates the merge from headers, queues it and returns it QUEUED at once' })
  async startMerge(@Ctx() context: ApiContext, @Arg('input', () => StartMergeInput) input: StartMergeInput): Promise<{ merge: MergeType }> {
    return withErrorCodes(async () => ({ merge: toMerge(await requestMerge(context.prisma, requireQueue(context), { ...input, nonFinite: input.nonFinite === NonFiniteMode.WARN ? 'warn' : undefined }, requesterOf(context))) }));
  }

  @Query(() => MergeType)
  async merge(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<MergeType> {
    const row = await prisma.merge.findUnique({ where: { id } }).catch(() => null);
    if (!row) throw new GraphQLError(`merge ${id} does not exist`, { extensions: { code: 'NOT_FOUND' } });
    return toMerge(row);
  }

  @Query(() => MergeConnection, { description: 'merges, newest first unless ordered otherwise' })
  async merges(
    @Ctx() { prisma }: ApiContext,
    @Args() args: JobListArgs,
  ): Promise<Connection<MergeType>> {
    return withErrorCodes(async () => pageConnection(await listMerges(prisma, { ...args.filter }, jobPage(args, 'merge')), 'merge', toMerge));
  }

  @FieldResolver(() => GraphQLJSONObject, { description: "the method's global parameters in force: those requested, the rest at the method's defaults (per-model ones are on each input)" })
  resolvedParameters(@Root() merge: MergeType): Record<string, unknown> {
    return withDefaults(getMergeMethod(merge.method).globalParameters, merge.parameters);
  }

  @FieldResolver(() => [MergeInputType])
  async inputs(@Root() merge: MergeType, @Ctx() { prisma }: ApiContext): Promise<MergeInputType[]> {
    const rows = await prisma.mergeInput.findMany({ where: { mergeId: merge.id }, include: { model: true }, orderBy: { position: 'asc' } });
    const method = getMergeMethod(merge.method);
    return rows.map((r) => ({
      position: r.position,
      isBase: r.isBase,
      parameters: r.parameters as Record<string, unknown>,
      resolvedParameters: r.isBase ? {} : withDefaults(method.modelParameters, r.parameters as Record<string, unknown>),
      model: r.model,
    }));
  }

  @FieldResolver(() => ModelType, { nullable: true, description: 'the merged model, once COMPLETED' })
  async outputModel(@Root() merge: MergeType, @Ctx() { loaders }: ApiContext): Promise<ModelType | null> {
    return merge.outputModelId ? loaders.model.load(merge.outputModelId) : null;
  }
}
