/**
 * `apl-merge start` (npm start) as a real process: with no DATABASE_URL it starts an embedded
 * PostgreSQL under its data directory, serves the API, runs a worker, and on the first start
 * registers the demo, whose merge the worker completes; a second start reuses the data and does
 * not register the demo again; --no-demo with DATABASE_URL leaves the database empty.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { join, resolve } from 'node:path';
import { createTestDatabase } from './helpers/database';
import { removeTempDirs, tempDir } from './helpers/files';
import { graphqlClient, waitFor } from './helpers/graphql';
import { HAS_BROWSER, launchBrowser } from './helpers/browser';

jest.setTimeout(240000);
afterAll(removeTempDirs);

interface Started {
  child: ChildProcess;
  url: string;
  /** The admin token from the printed sign-in address (#token=…). */
  token: string;
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
  await waitFor(() => /open http:\/\/\S+\/#token=\S+/.test(output) || child.exitCode !== null, 'the sign-in address', 10000);
  const url = /GraphQL API at (\S+)/.exec(output)?.[1];
  const token = /open http:\/\/\S+\/#token=(\S+)/.exec(output)?.[1];
  if (!url || !token) throw new Error(`start printed no URL or token:\n${output}`);
  return {
    child,
    url,
    token,
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

async function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), ...args], { env });
  return stdout;
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
    // The admin token: in DATA_DIR/admin-token, readable by its owner only, and what the sign-in address carries.
    const tokenFile = join(dataDir, 'admin-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(first.token);
    expect(first.output()).toMatch(new RegExp(`open http://127\\.0\\.0\\.1:\\d+/#token=${first.token}`));
    expect((await graphqlClient(first.url)('{ viewer { role } }')).errors![0].extensions.code).toBe('UNAUTHENTICATED');
    const gql = graphqlClient(first.url, first.token);
    expect((await gql<{ viewer: { role: string } }>('{ viewer { role } }')).data!.viewer.role).toBe('ADMIN');
    // The embedded database: a random password kept 0600, on 127.0.0.1 only, and the fixed one refused.
    const passwordFile = join(dataDir, 'postgres-password');
    expect(statSync(passwordFile).mode & 0o777).toBe(0o600);
    const password = readFileSync(passwordFile, 'utf8').trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const port = Number(readFileSync(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[3]);
    const client = new Client({ connectionString: `postgresql://postgres:${password}@127.0.0.1:${port}/postgres` });
    await client.connect();
    try {
      expect((await client.query<{ listen_addresses: string }>('SHOW listen_addresses')).rows[0].listen_addresses).toBe('127.0.0.1');
    } finally {
      await client.end();
    }
    const withOldPassword = new Client({ connectionString: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres` });
    await expect(withOldPassword.connect()).rejects.toThrow(/password authentication failed/);
    // The data directory is not a data root: its database files cannot be registered.
    const register = await gql('mutation($p: String!) { registerModel(input: { name: "x", kind: BASE, path: $p }) { model { id } } }', { p: join(dataDir, 'postgres') });
    expect(register.errors![0].message).toMatch(/outside the configured data roots/);
    // A token created from the command line while the platform runs (through its postmaster.pid).
    const created = await runCli(['token', 'create', '--name', 'reader', '--role', 'viewer', '--data-dir', dataDir], withoutDatabaseUrl());
    const reader = created.trim().split('\n').pop()!;
    expect((await graphqlClient(first.url, reader)<{ viewer: { name: string } }>('{ viewer { name } }')).data!.viewer.name).toBe('reader');
    type Merged = { models: { nodes: Array<{ name: string; evaluations: { nodes: Array<{ split: string }> }; ancestors: Array<{ name: string }> }> } };
    let merged: Merged['models']['nodes'] = [];
    await waitFor(async () => {
      const result = await gql<Merged>(`{ models(filter: { kind: MERGE }) { nodes { name evaluations { nodes { split } } ancestors { name } } } }`);
      merged = result.data?.models.nodes ?? [];
      return merged.length > 0;
    }, `the demo merge (output so far:\n${first.output()})`, 120000);
    expect(merged[0].name).toBe('demo-apl');
    expect(merged[0].ancestors.map((a) => a.name)).toContain('demo-base');
    expect(merged[0].evaluations.nodes.length).toBeGreaterThan(0);
    expect(first.output()).toMatch(/try: \{ lineage\(baseId: "[0-9a-f-]+"\)/);
    // The printed address signs a browser in to the dashboard, which shows the demo merge.
    if (HAS_BROWSER) {
      const browser = await launchBrowser();
      try {
        const page = await browser.newPage();
        await page.goto(/open (http:\/\/\S+\/#token=\S+)/.exec(first.output())![1]);
        await page.getByText(/^Signed in as admin(-\d+)? \(admin\)/).waitFor();
        await page.getByRole('link', { name: 'demo-apl' }).click();
        await page.getByRole('heading', { name: 'demo-apl' }).waitFor();
      } finally {
        await browser.close();
      }
    }

    // The supervisor: a worker killed with SIGKILL is replaced.
    const workerPid = Number(/worker: worker [^:\s]+:(\d+) \(backend/.exec(first.output())![1]);
    process.kill(workerPid, 'SIGKILL');
    await waitFor(() => /supervisor: the worker exited \(SIGKILL\) after [\d.]+ s; starting another in 1 s/.test(first.output()), 'the supervisor to notice', 10000);
    await waitFor(() => [...first.output().matchAll(/worker: worker [^:\s]+:(\d+) \(backend/g)].some((m) => Number(m[1]) !== workerPid), `a new worker (output:\n${first.output()})`, 30000);
    // … and so is the embedded PostgreSQL, on the same port; the API answers again once it is back.
    const postmaster = Number(readFileSync(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGKILL');
    await waitFor(() => /database: the embedded PostgreSQL exited \(SIGKILL\); starting it again on port \d+/.test(first.output()), 'the database supervisor to notice', 10000);
    await waitFor(() => /database: the embedded PostgreSQL is running again/.test(first.output()), `the database to be back (output:\n${first.output()})`, 60000);
    await waitFor(async () => (await gql<{ viewer: { role: string } }>('{ viewer { role } }')).data?.viewer.role === 'ADMIN', 'the API to answer again', 30000);
    expect(first.child.exitCode).toBeNull();
  } finally {
    expect(await first.stop()).toBe(0);
  }

  const second = await start(['--data-dir', dataDir], withoutDatabaseUrl());
  try {
    expect(second.output()).toMatch(/embedded PostgreSQL .* \(data in /);
    expect(second.token).toBe(first.token);
    expect(second.output()).toMatch(/admin token reused/);
    const models = await graphqlClient(second.url, second.token)<{ models: { nodes: Array<{ name: string }> } }>(`{ models(first: 100) { nodes { name } } }`);
    expect(models.data!.models.nodes.filter((m) => m.name === 'demo-base')).toHaveLength(1);
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
    const models = await graphqlClient(started.url, started.token)<{ models: { nodes: unknown[] } }>(`{ models { nodes { name } } }`);
    expect(models.data!.models.nodes).toEqual([]);
  } finally {
    expect(await started.stop()).toBe(0);
    await database.drop();
  }
});
