/** The Prisma client over node-postgres (Prisma 7's driver adapter: no query engine binary). */
import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, QueryResultRow } from 'pg';
import { Prisma, PrismaClient } from './generated/client';

export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(): string {
  return process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

/** The pool under each client createPrisma made, and who hears its statements. */
const direct = new WeakMap<object, { pool: Pool; onQuery?: (sql: string) => void }>();

/** `onQuery` hears every SQL statement the client sends (the query-count tests and diagnostics use it). */
export function createPrisma(url = databaseUrl(), options: { onQuery?: (sql: string) => void } = {}): PrismaClient {
  const pool = new Pool({ connectionString: url });
  // A connection the server ends while idle (a restart) is an error event; the next query reports it.
  pool.on('error', () => undefined);
  const adapter = new PrismaPg(pool, { disposeExternalPool: true });
  const { onQuery } = options;
  if (!onQuery) {
    const client = new PrismaClient({ adapter });
    direct.set(client, { pool });
    return client;
  }
  const client = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
  client.$on('query', (event) => onQuery(event.query));
  direct.set(client, { pool, onQuery });
  return client;
}

/** Whether this is a client createPrisma made (not a transaction's): reads through it may be batched and remembered. */
export const isPooledClient = (prisma: object): boolean => direct.has(prisma);

/**
 * Rows of one read-only statement sent on the client's own pool, past Prisma: for the hottest
 * reads (lineage walks), where Prisma's per-query work cost more than PostgreSQL's answer. The
 * statement is prepared under `name` once per connection. A transaction's client (or one made
 * elsewhere) runs the same text through Prisma, so both paths read the same rows.
 */
export async function readRows<T>(prisma: PrismaClient | Prisma.TransactionClient, name: string, text: string, values: unknown[]): Promise<T[]> {
  const own = direct.get(prisma);
  if (!own) return (prisma as PrismaClient).$queryRawUnsafe<T[]>(text, ...values);
  own.onQuery?.(text);
  return (await own.pool.query<T & QueryResultRow>({ name, text, values })).rows;
}

export type { PrismaClient };

/** The URL without its user and password, for logs. */
export function redactedUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}
