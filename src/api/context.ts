/** What every resolver gets: the database and the configured data roots. */
import { PrismaClient } from '../store/client';
import type { JobEventHub } from './event-hub';

export interface ApiContext {
  prisma: PrismaClient;
  dataRoots: readonly string[];
  /** Live job events; absent where the server runs without a LISTEN connection. */
  events?: JobEventHub;
}
