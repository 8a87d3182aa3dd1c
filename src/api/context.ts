/** What every resolver gets: the database, the caller, the data roots, the job queue and live events. */
import type { PgBoss } from 'pg-boss';
import { GraphQLError } from 'graphql';
import { PrismaClient } from '../store/client';
import { allDataRoots, DataRoot } from '../store/data-roots';
import type { JobEventHub } from './event-hub';
import type { Principal } from './auth';
import type { Requester } from '../jobs/requests';
import type { Loaders } from './loaders';

export interface ApiContext {
  prisma: PrismaClient;
  /** Who is asking (the token's name and role). */
  viewer: Principal;
  /** The data roots given when the server started; `dataRoots(context)` adds those an admin added. */
  configuredRoots: readonly DataRoot[];
  /** Live job events; absent where the server runs without a LISTEN connection. */
  events?: JobEventHub;
  /** The job queue; absent where the server was started without one (then jobs cannot be started). */
  queue?: PgBoss;
  /** How many QUEUED or RUNNING jobs one token may have at once. */
  maxActiveJobsPerToken: number;
  /** This request's batching loaders (see loaders.ts). */
  loaders: Loaders;
  /**
   * When an HTTP request began (performance.now()): reads shared with other requests are no older
   * than this (store/lineage.ts). Absent for subscriptions, whose events are answered as of each event.
   */
  startedAt?: number;
}

export function requireQueue(context: ApiContext): PgBoss {
  if (!context.queue) throw new GraphQLError('this server has no job queue, so jobs cannot be started or cancelled', { extensions: { code: 'SERVICE_UNAVAILABLE' } });
  return context.queue;
}

/** Every data root in force now: the configured ones and those in the database. */
export const dataRoots = (context: ApiContext): Promise<DataRoot[]> => allDataRoots(context.prisma, context.configuredRoots);

/** The caller as a job requester: their token's name, and the limit on their active jobs. */
export const requesterOf = (context: ApiContext): Requester => ({ name: context.viewer.name, maxActiveJobs: context.maxActiveJobsPerToken });
