/** What every resolver gets: the database, the configured data roots, the job queue and live events. */
import type { PgBoss } from 'pg-boss';
import { GraphQLError } from 'graphql';
import { PrismaClient } from '../store/client';
import type { JobEventHub } from './event-hub';

export interface ApiContext {
  prisma: PrismaClient;
  dataRoots: readonly string[];
  /** Live job events; absent where the server runs without a LISTEN connection. */
  events?: JobEventHub;
  /** The job queue; absent where the server was started without one (then jobs cannot be started). */
  queue?: PgBoss;
}

export function requireQueue(context: ApiContext): PgBoss {
  if (!context.queue) throw new GraphQLError('this server has no job queue, so jobs cannot be started or cancelled', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  return context.queue;
}
