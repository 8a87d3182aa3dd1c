/** `apl-merge serve` as a real process: migrates a fresh database, serves GraphQL, stops on SIGTERM. */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createTestDatabase } from './helpers/database';
import { removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

it('migrates, prints the GraphQL URL, answers queries and exits cleanly', async () => {
  const database = await createTestDatabase();
  try {
    const child = spawn(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'serve', '--port', '0', '--data-roots', tempDir()], {
      env: { ...process.env, DATABASE_URL: database.url },
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
