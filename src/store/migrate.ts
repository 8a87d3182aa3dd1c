/**
 * Applies the migrations in prisma/migrations in name order, each in its own transaction,
 * recording them in Prisma's `_prisma_migrations` table exactly as `prisma migrate deploy` does
 * (so either tool can take over). Prisma's own migrate needs a native schema engine that cannot be
 * downloaded offline; this runner needs only the SQL. A Postgres advisory lock keeps two processes
 * (an API and a worker starting together) from migrating at once. An applied migration whose file
 * has changed since is an error, not something to re-run.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';

export const MIGRATIONS_DIR = resolve(__dirname, '../../prisma/migrations');
const LOCK_KEY = 72707369; // arbitrary, fixed: the project's migration lock

function migrationsDirectory(): string {
  // From src/ (tests) and from dist/src/ (built code) alike.
  for (const candidate of [MIGRATIONS_DIR, resolve(__dirname, '../../../prisma/migrations')]) if (existsSync(candidate)) return candidate;
  throw new Error(`prisma/migrations not found near ${__dirname}`);
}

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

export async function migrate(url: string): Promise<MigrationResult> {
  const dir = migrationsDirectory();
  const migrations = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'migration.sql')))
    .map((e) => e.name)
    .sort();
  const client = new Client({ connectionString: url });
  await client.connect();
  const result: MigrationResult = { applied: [], alreadyApplied: [] };
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    )`);
    const done = await client.query<{ migration_name: string; checksum: string }>(
      'SELECT migration_name, checksum FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    );
    const applied = new Map(done.rows.map((r) => [r.migration_name, r.checksum]));
    for (const name of migrations) {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      const checksum = createHash('sha256').update(sql).digest('hex');
      const previous = applied.get(name);
      if (previous !== undefined) {
        if (previous !== checksum) throw new Error(`migration ${name} was applied with checksum ${previous}, but its file now has ${checksum}: never edit an applied migration, add a new one`);
        result.alreadyApplied.push(name);
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query(
          'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count) VALUES ($1, $2, now(), $3, 1)',
          [randomUUID(), checksum, name],
        );
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${name} failed and was rolled back: ${(err as Error).message}`);
      }
      result.applied.push(name);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
  return result;
}
