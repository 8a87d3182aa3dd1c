/** What every resolver gets: the database and the configured data roots. */
import { PrismaClient } from '../store/client';

export interface ApiContext {
  prisma: PrismaClient;
  dataRoots: readonly string[];
}
