/** `apl-merge serve` as a real process: migrates a fresh database, serves GraphQL, stops on SIGTERM. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { resolve } from 'node:path';
import { createTestDatabase } from './helpers/database';
import { removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

it('migrates, prints the GraphQL URL, answers queries and exits cleanly', async () => {
  const database = await createTestDatabase();
  try {
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
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ models { models { name } hasNextPage } }' }) });
    expect(await response.json()).toEqual({ data: { models: { models: [], hasNextPage: false } } });
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
