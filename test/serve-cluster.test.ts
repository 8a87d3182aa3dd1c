/**
 * `apl-merge serve --workers N` as real processes: one migration, N API processes sharing the port,
 * a killed one replaced (and requests answered meanwhile by the others), all stopped on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createPrisma } from '../src/store/client';
import { migrate } from '../src/store/migrate';
import { createTestDatabase } from './helpers/database';
import { waitFor } from './helpers/graphql';
import { removeTempDirs, tempDir } from './helpers/files';
import { testToken } from './helpers/tokens';

afterAll(removeTempDirs);
jest.setTimeout(60000);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let stragglers = () => undefined as void;

it('serves from N processes on one port, replaces one that is killed, and stops them all', async () => {
  const database = await createTestDatabase();
  try {
    await migrate(database.url);
    const prisma = createPrisma(database.url);
    const token = await testToken(prisma, 'VIEWER');
    await prisma.$disconnect();
    const child = spawn(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'serve', '--workers', '2', '--port', '0', '--data-roots', tempDir()], { env: { ...process.env, NODE_ENV: 'production', DATABASE_URL: database.url } });
    // Whatever happens below, no process of this test outlives it.
    stragglers = () => [child.pid, ...pids()].forEach((pid) => pid && alive(pid) && process.kill(pid, 'SIGKILL'));
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const pids = () => [...output.matchAll(/api process (\d+) listening/g)].map((m) => Number(m[1]));
    await waitFor(() => pids().length === 2 && /GraphQL API at \S+/.test(output), `two API processes (output:\n${output})`, 30000);
    const url = /GraphQL API at (\S+)/.exec(output)![1];
    expect(output).toMatch(/\(0 migration\(s\) applied\)/);
    const ask = async () => (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ viewer { role } }' }) })).json();
    for (let i = 0; i < 10; i++) expect(await ask()).toEqual({ data: { viewer: { role: 'VIEWER' } } });
    // One API process dies: the other answers, and the primary starts a replacement.
    const [first, second] = pids();
    process.kill(first, 'SIGKILL');
    await waitFor(() => new RegExp(`api process ${first} exited \\(SIGKILL\\); starting another in 1 s`).test(output), 'the exit to be logged', 10000);
    for (let i = 0; i < 5; i++) expect(await ask()).toEqual({ data: { viewer: { role: 'VIEWER' } } });
    await waitFor(() => pids().length === 3, `a replacement (output:\n${output})`, 20000);
    const replacement = pids()[2];
    expect(alive(replacement) && alive(second)).toBe(true);
    for (let i = 0; i < 5; i++) expect(await ask()).toEqual({ data: { viewer: { role: 'VIEWER' } } });
    const exit = new Promise<number | null>((done) => child.on('exit', done));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect([second, replacement].filter(alive)).toEqual([]);
  } finally {
    stragglers();
    await database.drop();
  }
});
