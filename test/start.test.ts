/**
 * `apl-merge start` (npm start) as a real process: with no DATABASE_URL it starts an embedded
 * PostgreSQL under its data directory, serves the API, runs a worker, and on the first start
 * registers the demo, whose merge the worker completes; a second start reuses the data and does
 * not register the demo again; --no-demo with DATABASE_URL leaves the database empty.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createTestDatabase } from './helpers/database';
import { removeTempDirs, tempDir } from './helpers/files';
import { graphqlClient, waitFor } from './helpers/graphql';

jest.setTimeout(240000);
afterAll(removeTempDirs);

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  stop: () => Promise<number | null>;
}

async function start(args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  // As users run it (jest's NODE_ENV=test would change how Apollo handles signals).
  const child = spawn(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'start', '--port', '0', ...args], { env: { ...env, NODE_ENV: 'production' } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', done));
  await waitFor(() => /GraphQL API at (\S+)/.test(output) || child.exitCode !== null, 'the GraphQL URL', 60000);
  const url = /GraphQL API at (\S+)/.exec(output)?.[1];
  if (!url) throw new Error(`start printed no URL:\n${output}`);
  return {
    child,
    url,
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const withoutDatabaseUrl = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  return env;
};

it('starts an embedded database, registers the demo once and merges it', async () => {
  const dataDir = join(tempDir(), 'data');
  // The embedded server runs as an unprivileged user when we are root: it must reach the directory.
  chmodSync(resolve(dataDir, '..'), 0o755);
  const first = await start(['--data-dir', dataDir], withoutDatabaseUrl());
  try {
    expect(first.output()).toMatch(/database: embedded PostgreSQL at postgresql:\/\/127\.0\.0\.1:\d+\/postgres \(created in /);
    expect(existsSync(join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    const gql = graphqlClient(first.url);
    type Merged = { models: { models: Array<{ name: string; evaluations: Array<{ split: string }>; ancestors: Array<{ name: string }> }> } };
    let merged: Merged['models']['models'] = [];
    await waitFor(async () => {
      const result = await gql<Merged>(`{ models(filter: { kind: MERGE }) { models { name evaluations { split } ancestors { name } } } }`);
      merged = result.data?.models.models ?? [];
      return merged.length > 0;
    }, `the demo merge (output so far:\n${first.output()})`, 120000);
    expect(merged[0].name).toBe('demo-apl');
    expect(merged[0].ancestors.map((a) => a.name)).toContain('demo-base');
    expect(merged[0].evaluations.length).toBeGreaterThan(0);
    expect(first.output()).toMatch(/try: \{ lineage\(baseId: "[0-9a-f-]+"\)/);
  } finally {
    expect(await first.stop()).toBe(0);
  }

  const second = await start(['--data-dir', dataDir], withoutDatabaseUrl());
  try {
    expect(second.output()).toMatch(/embedded PostgreSQL .* \(data in /);
    const models = await graphqlClient(second.url)<{ models: { models: Array<{ name: string }> } }>(`{ models(first: 100) { models { name } } }`);
    expect(models.data!.models.models.filter((m) => m.name === 'demo-base')).toHaveLength(1);
    expect(second.output()).not.toMatch(/demo: registered/);
  } finally {
    expect(await second.stop()).toBe(0);
  }
});

it('uses DATABASE_URL when set, and --no-demo registers nothing', async () => {
  const database = await createTestDatabase();
  const dataDir = join(tempDir(), 'data');
  const started = await start(['--data-dir', dataDir, '--no-demo'], { ...process.env, DATABASE_URL: database.url });
  try {
    expect(started.output()).not.toMatch(/embedded/);
    expect(existsSync(join(dataDir, 'postgres'))).toBe(false);
    const models = await graphqlClient(started.url)<{ models: { models: unknown[] } }>(`{ models { models { name } } }`);
    expect(models.data!.models.models).toEqual([]);
  } finally {
    expect(await started.stop()).toBe(0);
    await database.drop();
  }
});
