/** Worker liveness, for a dashboard's "who is alive and what do they run". */
import { Arg, Ctx, Field, ID, Int, ObjectType, Query, Resolver } from 'type-graphql';
import { listWorkers } from '../store/workers';
import { ApiContext } from './context';

@ObjectType('Worker', { description: 'A worker process: alive while it keeps beating' })
class WorkerType {
  @Field(() => ID) id: string;
  @Field({ description: 'host:pid, as its log lines say' }) name: string;
  @Field() host: string;
  @Field(() => Int) pid: number;
  @Field({ description: 'the engine backend it computes on (wasm, webgpu, cpu)' }) backend: string;
  @Field(() => Int, { description: 'jobs it runs at once' }) concurrency: number;
  @Field() startedAt: Date;
  @Field({ description: 'its last beat' }) lastSeenAt: Date;
  @Field(() => Date, { nullable: true, description: 'when it stopped cleanly' }) stoppedAt: Date | null;
  @Field({ description: 'stopped neither cleanly nor by missing three beats' }) alive: boolean;
  @Field(() => ID, { nullable: true, description: 'the merge, analysis or evaluation it runs now (the first, with concurrency above 1)' }) currentJob: string | null;
  @Field(() => [ID], { description: 'every merge and analysis it runs now' }) currentJobs: string[];
}

@Resolver()
export class WorkerResolver {
  @Query(() => [WorkerType], { description: 'workers alive now, newest first; all: also those stopped or lost in the last day' })
  async workers(@Ctx() { prisma }: ApiContext, @Arg('all', { defaultValue: false }) all: boolean): Promise<WorkerType[]> {
    return (await listWorkers(prisma, all)).map((w) => ({ ...w, currentJob: w.currentJobs[0] ?? null }));
  }
}
