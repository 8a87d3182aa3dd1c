/** Live job progress over graphql-ws, replaying what a reconnecting client missed. */
import { Arg, Field, Float, ID, Int, ObjectType, registerEnumType, Resolver, Root, Subscription } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { JobStatus } from '../store/generated/enums';
import { JobEventRow } from '../store/events';
import { ApiContext } from './context';

registerEnumType(JobStatus, { name: 'JobStatus' });

@ObjectType({ description: 'One step of a job: the events of a job are totally ordered by id' })
export class JobEventType {
  @Field(() => ID, { description: 'pass as afterEventId when reconnecting to get what was missed' }) id: string;
  @Field(() => ID) jobId: string;
  @Field() jobKind: string;
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

@Resolver()
export class JobResolver {
  @Subscription(() => JobEventType, {
    description: "a job's progress events from afterEventId on (all when absent), live, until it ends",
    subscribe: ({ args, context }) => {
      const { prisma, events } = context as ApiContext;
      if (!events) throw new GraphQLError('live events are not available on this server', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      return events.stream(prisma, args.jobId as string, parseAfter(args.afterEventId as string | undefined));
    },
  })
  jobProgress(
    @Root() event: JobEventRow,
    @Arg('jobId', () => ID) _jobId: string,
    @Arg('afterEventId', () => ID, { nullable: true }) _afterEventId?: string,
  ): JobEventType {
    void _jobId;
    void _afterEventId;
    return { ...event, id: event.id.toString(), etaSeconds: event.etaSeconds ?? null };
  }
}
