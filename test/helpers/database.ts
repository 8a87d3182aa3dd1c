/** A fresh PostgreSQL database per test file on the real server (DATABASE_URL's, default local), dropped afterwards. */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { DEFAULT_DATABASE_URL } from '../../src/store/client';

const adminUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;

export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `apl_merge_test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
