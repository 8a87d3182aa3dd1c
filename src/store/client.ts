/** The Prisma client over node-postgres (Prisma 7's driver adapter: no query engine binary). */
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client';

export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(): string {
  return process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

/** `onQuery` hears every SQL statement the client sends (the query-count tests and diagnostics use it). */
export function createPrisma(url = databaseUrl(), options: { onQuery?: (sql: string) => void } = {}): PrismaClient {
  const adapter = new PrismaPg({ connectionString: url });
  const { onQuery } = options;
  if (!onQuery) return new PrismaClient({ adapter });
  const client = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
  client.$on('query', (event) => onQuery(event.query));
  return client;
}

export type { PrismaClient };

/** The URL without its user and password, for logs. */
export function redactedUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}
