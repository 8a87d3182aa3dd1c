/** Shared by the platform benchmarks: a fresh database, a real `apl-merge serve` process, percentiles. */
import { ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { resolve } from 'node:path';
import { createPrisma, DEFAULT_DATABASE_URL } from '../../src/store/client';
import { Role } from '../../src/store/generated/enums';
import { createToken } from '../../src/store/tokens';
import { migrate } from '../../src/store/migrate';
import { createScratchDatabase, ScratchDatabase } from '../../src/store/scratch';

/** A new, migrated database on DATABASE_URL's server (default local). */
export async function freshDatabase(prefix: string): Promise<ScratchDatabase> {
  const database = await createScratchDatabase(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL, prefix);
  await migrate(database.url);
  return database;
}

/** `apl-merge serve` in its own process, as deployed; resolves with its GraphQL URL and a token of `role` to call it with. */
export async function startServer(databaseUrl: string, role: Role = 'VIEWER', args: string[] = []): Promise<{ url: string; token: string; child: ChildProcess; stop: () => Promise<void> }> {
  const prisma = createPrisma(databaseUrl);
  const { token } = await createToken(prisma, { name: `bench-${role.toLowerCase()}-${Date.now()}`, role });
  await prisma.$disconnect();
  // BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof") profiles the server.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, resolve(__dirname, '../../../bin/apl-merge.js'), 'serve', '--port', '0', '--data-roots', '/nonexistent', ...args], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const url = await new Promise<string>((done, fail) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /GraphQL API at (\S+)/.exec(output);
      if (match) done(match[1]);
    });
    child.on('exit', (code) => fail(new Error(`serve exited (${code}): ${output}`)));
  });
  return {
    url,
    token,
    child,
    stop: async () => {
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/**
 * CPU seconds (user + system) used so far by a process and its descendants, from /proc (Linux):
 * what each request costs the server, steadier on a shared machine than requests per second.
 */
export function cpuSecondsOfTree(rootPid: number): number {
  const stats = processStats();
  let ticks = 0;
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    ticks += stats.get(pid)?.ticks ?? 0;
    for (const [child, stat] of stats) if (stat.parent === pid) pending.push(child);
  }
  return ticks / TICKS_PER_SECOND;
}

/** CPU seconds used so far by every process running `command` (e.g. postgres: the database's share). */
export function cpuSecondsOfCommand(command: string): number {
  let ticks = 0;
  for (const stat of processStats().values()) if (stat.command === command) ticks += stat.ticks;
  return ticks / TICKS_PER_SECOND;
}

/** USER_HZ: 100 on every Linux we run on. */
const TICKS_PER_SECOND = 100;

function processStats(): Map<number, { parent: number; ticks: number; command: string }> {
  const stats = new Map<number, { parent: number; ticks: number; command: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces), "(...)": state ppid … utime(14) stime(15).
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const command = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      stats.set(Number(entry), { parent: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]), command });
    } catch {
      // The process ended while we looked.
    }
  }
  return stats;
}

/**
 * A GraphQL POST to a server, as a load generator sends it: `http` (node:http over keep-alive
 * sockets, ~0.25 ms of CPU a request here) or `fetch` (undici's WHATWG fetch, ~0.9 ms: as much
 * as the server's own work on a small query, so on a shared two-core machine it measures the
 * client as much as the server). Resolves with the parsed answer; rejects on GraphQL errors.
 */
export function graphqlPoster(url: string, token: string, client: 'http' | 'fetch', sockets = 100): (query: string, variables: Record<string, unknown>) => Promise<unknown> {
  const check = (body: { errors?: unknown; data?: unknown }) => {
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
  if (client === 'fetch') {
    return async (query, variables) => {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
      return check((await response.json()) as { errors?: unknown });
    };
  }
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const target = new URL(url);
  return (query, variables) =>
    new Promise((done, fail) => {
      const body = JSON.stringify({ query, variables });
      const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` };
      const request = httpRequest({ agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          try {
            done(check(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { errors?: unknown }));
          } catch (err) {
            fail(err);
          }
        });
      });
      request.on('error', fail);
      request.end(body);
    });
}
