/** Live job progress over graphql-ws, replaying what a reconnecting client missed. */
import { Arg, Authorized, Ctx, Field, Float, ID, Int, Mutation, ObjectType, Query, Resolver, Root, Subscription } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { cancelJob, retryJob } from '../jobs/requests';
import { JobStatus } from '../store/generated/enums';
import { JobEventRow } from '../store/events';
import { jobKindOf, lastEventId, listJobEvents, modelStatusEventsAfter, statusEventsAfter } from '../store/jobs';
import { Connection, connectionType, decodeCursor, pageConnection } from './connections';
import { ApiContext, requesterOf, requireQueue } from './context';
import { withErrorCodes } from './errors';
import { JobKindEnum } from './enums';
import { CancelledJobType, RetriedJobType } from './types';


@ObjectType('JobEvent', { description: 'One step of a job: the events of a job are totally ordered by id' })
export class JobEventType {
  @Field(() => ID, { description: 'pass as afterEventId when reconnecting to get what was missed' }) id: string;
  @Field(() => ID) jobId: string;
  @Field(() => JobKindEnum) jobKind: string;
  @Field() phase: string;
  @Field(() => Int) done: number;
  @Field(() => Int) total: number;
  @Field(() => Float, { nullable: true }) etaSeconds: number | null;
  @Field() message: string;
  @Field(() => JobStatus) status: JobStatus;
  @Field() createdAt: Date;
}

function parseAfter(value: string | undefined): bigint | undefined {
  if (value === undefined || value === null) return undefined;
  if (!/^\d+$/.test(value)) throw new GraphQLError(`afterEventId "${value}" is not an event id`, { extensions: { code: 'BAD_USER_INPUT' } });
  return BigInt(value);
}

const toEvent = (event: JobEventRow): JobEventType => ({ ...event, id: event.id.toString(), etaSeconds: event.etaSeconds ?? null });

const JobEventConnection = connectionType(JobEventType, 'JobEvent', "A job's events in order");

function hubOf(context: ApiContext) {
  if (!context.events) throw new GraphQLError('live events are not available on this server', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  return context.events;
}

@Resolver()
export class JobResolver {
  @Authorized('OPERATOR')
  @Mutation(() => CancelledJobType, { description: 'cancels a QUEUED or RUNNING merge, analysis or evaluation; a running one stops through its AbortSignal and leaves no output' })
  async cancelJob(@Ctx() context: ApiContext, @Arg('id', () => ID) id: string): Promise<CancelledJobType> {
    return withErrorCodes(async () => ({ id, kind: await cancelJob(context.prisma, requireQueue(context), id, { name: context.viewer.name, anyJob: context.viewer.role === 'ADMIN' }), status: 'CANCELLED' as JobStatus }));
  }

  @Authorized('OPERATOR')
  @Mutation(() => RetriedJobType, { description: 'queues a FAILED or CANCELLED merge, analysis or evaluation again, as it was requested (operator: their own jobs; admin: any)' })
  async retryJob(@Ctx() context: ApiContext, @Arg('id', () => ID) id: string): Promise<RetriedJobType> {
    return withErrorCodes(async () => ({ id, kind: await retryJob(context.prisma, requireQueue(context), id, { ...requesterOf(context), anyJob: context.viewer.role === 'ADMIN' }), status: 'QUEUED' as JobStatus }));
  }

  @Query(() => JobEventConnection, { description: "a job's events in order, a page at a time (the history a live page shows before subscribing from its last id)" })
  async jobEvents(
    @Ctx() { prisma }: ApiContext,
    @Arg('jobId', () => ID) jobId: string,
    @Arg('first', () => Int, { defaultValue: 100, description: '1 to 500' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
  ): Promise<Connection<JobEventType>> {
    return withErrorCodes(async () => {
      if (!(await jobKindOf(prisma, jobId))) throw new GraphQLError(`no merge, analysis or evaluation has id ${jobId}`, { extensions: { code: 'NOT_FOUND' } });
      const afterId = after ? decodeCursor('event', after) : undefined;
      if (afterId !== undefined && !/^\d+$/.test(afterId)) throw new GraphQLError(`after: "${after}" is not a cursor of this list`, { extensions: { code: 'BAD_USER_INPUT', argument: 'after' } });
      const page = await listJobEvents(prisma, jobId, first, afterId === undefined ? undefined : BigInt(afterId));
      return pageConnection({ ...page, rows: page.rows.map((row) => ({ ...row, id: row.id.toString() })) }, 'event', (row) => toEvent({ ...row, id: BigInt(row.id) }));
    });
  }

  @Subscription(() => JobEventType, {
    description: "status changes of the merges, analyses and evaluations a model takes part in (input, output, analysed or evaluated), from afterEventId on (live only when absent)",
    subscribe: async function* ({ args, context }) {
      const { prisma } = context as ApiContext;
      const hub = hubOf(context as ApiContext);
      if (!(await prisma.model.findUnique({ where: { id: args.modelId as string }, select: { id: true } }))) {
        throw new GraphQLError(`model ${args.modelId as string} does not exist`, { extensions: { code: 'NOT_FOUND' } });
      }
      const after = parseAfter(args.afterEventId as string | undefined) ?? (await lastEventId(prisma));
      yield* hub.streamAll(after, (last) => modelStatusEventsAfter(prisma, args.modelId as string, last));
    },
  })
  modelJobs(
    @Root() event: JobEventRow,
    @Arg('modelId', () => ID) _modelId: string,
    @Arg('afterEventId', () => ID, { nullable: true }) _afterEventId?: string,
  ): JobEventType {
    void _modelId;
    void _afterEventId;
    return toEvent(event);
  }

  @Subscription(() => JobEventType, {
    description: 'status changes of every merge, analysis and evaluation, from afterEventId on (live only when absent): what a list of jobs follows',
    subscribe: async function* ({ args, context }) {
      const { prisma } = context as ApiContext;
      const after = parseAfter(args.afterEventId as string | undefined) ?? (await lastEventId(prisma));
      yield* hubOf(context as ApiContext).streamAll(after, (last) => statusEventsAfter(prisma, last));
    },
  })
  jobStatuses(@Root() event: JobEventRow, @Arg('afterEventId', () => ID, { nullable: true }) _afterEventId?: string): JobEventType {
    void _afterEventId;
    return toEvent(event);
  }

  @Subscription(() => JobEventType, {
    description: "a job's progress events from afterEventId on (all when absent), live, until it ends",
    subscribe: async function* ({ args, context }) {
      const { prisma } = context as ApiContext;
      const after = parseAfter(args.afterEventId as string | undefined);
      if (!(await jobKindOf(prisma, args.jobId as string))) throw new GraphQLError(`no merge, analysis or evaluation has id ${args.jobId as string}`, { extensions: { code: 'NOT_FOUND' } });
      yield* hubOf(context as ApiContext).stream(prisma, args.jobId as string, after);
    },
  })
  jobProgress(
    @Root() event: JobEventRow,
    @Arg('jobId', () => ID) _jobId: string,
    @Arg('afterEventId', () => ID, { nullable: true }) _afterEventId?: string,
  ): JobEventType {
    void _jobId;
    void _afterEventId;
    return toEvent(event);
  }
}
