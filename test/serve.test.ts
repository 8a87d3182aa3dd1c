/** `apl-merge serve` as a real process: migrates a fresh database, serves GraphQL, stops on SIGTERM. */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { resolve } from 'node:path';
import { createTestDatabase } from './helpers/database';
import { removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

const cli = (args: string[], env: NodeJS.ProcessEnv) => promisify(execFile)(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), ...args], { env });

it('migrates, prints the GraphQL URL, answers queries with a token and exits cleanly; the log shows no body or token', async () => {
  const database = await createTestDatabase();
  try {
    // Tokens are managed on the database at DATABASE_URL (migrated by the command itself).
    const env = { ...process.env, DATABASE_URL: database.url };
    const created = await cli(['token', 'create', '--name', 'ops', '--role', 'operator', '--expires', '30d'], env);
    const token = created.stdout.trim().split('\n').pop()!;
    expect(token).toMatch(/^aplm_/);
    expect(created.stdout).toMatch(/created token "ops" \(operator, expires \d{4}-/);
    const child = spawn(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'serve', '--port', '0', '--data-roots', tempDir()], {
      env: { ...process.env, NODE_ENV: 'production', DATABASE_URL: database.url },
    });
    let output = '';
    const url = await new Promise<string>((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`no URL printed: ${output}`)), 20000);
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /GraphQL API at (\S+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          done(match[1]);
        }
      });
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    });
    expect(output).toMatch(/\d+ migration\(s\) applied/);
    const query = JSON.stringify({ query: '{ models { nodes { name } pageInfo { hasNextPage } } }' });
    const anonymous = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: query });
    expect(anonymous.status).toBe(401);
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: query });
    expect(await response.json()).toEqual({ data: { models: { nodes: [], pageInfo: { hasNextPage: false } } } });
    // Bodies the server cannot read: JSON errors, and nothing of the body or the token in its output.
    const secret = 'BODY-SECRET-1234';
    const malformed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: `{"query": "${secret}` });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ errors: [{ message: 'request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] });
    const badQuery = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: `{ ${secret} }` }) });
    expect(badQuery.status).toBe(400);
    const listed = await cli(['token', 'list'], env);
    expect(listed.stdout).toMatch(/^ops\s+operator\s+aplm_\S{8}…\s+created \S+\s+last used \d{4}-\S+\s+expires \d{4}-\S+\s+active$/m);
    expect(listed.stdout).not.toContain(token);
    expect((await cli(['token', 'revoke', 'ops'], env)).stdout).toMatch(/revoked token "ops"/);
    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: query })).status).toBe(401);
    await expect(cli(['token', 'revoke', 'ops'], env)).rejects.toThrow(/token "ops" was already revoked/);
    expect(output).not.toContain(secret);
    expect(output).not.toContain(token);
    const exit = new Promise<number | null>((done) => child.on('exit', done));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  } finally {
    await database.drop();
  }
});

it('docker-compose.yml runs postgres, the API and a worker from commands that exist', () => {
  const compose = parse(readFileSync(resolve(__dirname, '../docker-compose.yml'), 'utf8')) as { services: Record<string, { command?: string[]; environment?: Record<string, string>; depends_on?: Record<string, unknown> }> };
  expect(Object.keys(compose.services).sort()).toEqual(['api', 'postgres', 'worker']);
  const { api, worker } = compose.services;
  expect(api.command).toEqual(expect.arrayContaining(['bin/apl-merge.js', 'serve']));
  expect(worker.command).toEqual(['node', 'dist/src/jobs/worker-cli.js']);
  for (const file of [api.command![1], worker.command![1]]) expect(existsSync(resolve(__dirname, '..', file))).toBe(true);
  for (const service of [api, worker]) {
    expect(service.environment!.DATABASE_URL).toMatch(/^postgresql:\/\/postgres:postgres@postgres:5432\//);
    expect(service.depends_on).toHaveProperty('postgres');
  }
});
