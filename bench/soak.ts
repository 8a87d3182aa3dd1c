/**
 * A soak under chaos (README: "Faults and recovery"). `apl-merge start` on a fresh data directory
 * (embedded PostgreSQL, its supervised worker) plus a second worker process; `--clients` clients
 * request `--merges` small merges between them while a chaos loop SIGKILLs one of the two workers
 * every `--kill-every` seconds (the supervisor restarts its own; the loop restarts the other) and
 * SIGKILLs the database once (the supervisor restarts it). Then every merge must have ended, and:
 * completed, failed, retries, duplicates (models registered twice for one merge: must be 0),
 * orphans (output or staging directories of jobs that did not complete: must be 0), time.
 *
 *   npm run build && node dist/bench/soak.js [--merges 200 --clients 10 --kill-every 3]
 */
import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { runningEmbeddedDatabase } from '../src/store/embedded';
import { flag } from './lib/platform';

const BIN = resolve(__dirname, '../../bin/apl-merge.js');
const WORKER = resolve(__dirname, '../src/jobs/worker-cli.js');

function spawnLogged(args: string[], env: NodeJS.ProcessEnv, into: string[]): ChildProcess {
  const child = spawn(process.execPath, args, { env: { ...env, NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer) => into.push(...chunk.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return child;
}

async function until(predicate: () => boolean | Promise<boolean>, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const lastLog: string[] = [];
let chaos = false;

async function main(): Promise<void> {
  const merges = flag('merges', 200);
  const clients = flag('clients', 10);
  const killEvery = flag('kill-every', 3);
  const parent = mkdtempSync(join(tmpdir(), 'apl-merge-soak-'));
  chmodSync(parent, 0o755);
  const dataDir = join(parent, 'data');
  const env: NodeJS.ProcessEnv = { ...process.env, APL_MERGE_HEARTBEAT_SECONDS: '10', APL_MERGE_SUPERVISE_SECONDS: '1', APL_MERGE_RETRY_LIMIT: '5', APL_MERGE_WORKER_HEARTBEAT_SECONDS: '1' };
  delete env.DATABASE_URL;
  const log: string[] = lastLog;
  const start = spawnLogged([BIN, 'start', '--port', '0', '--no-demo', '--data-dir', dataDir], env, log);
  let second: ChildProcess | undefined;
  try {
    await until(() => log.some((l) => l.startsWith('open http')), 'apl-merge start', 60000);
    const url = /GraphQL API at (\S+)/.exec(log.join('\n'))![1];
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const gql = async <T>(query: string, variables: Record<string, unknown> = {}): Promise<{ data?: T; errors?: Array<{ message: string; extensions: { code: string } }> }> => {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
      return (await response.json()) as { data?: T; errors?: Array<{ message: string; extensions: { code: string } }> };
    };
    const models = join(dataDir, 'models', 'family');
    writeSyntheticFamily(models, { tensors: [{ name: 'layers.0.w', shape: [64, 64] }, { name: 'layers.1.w', shape: [64, 64] }], fineTunes: 2, seed: 1 });
    const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
    const base = (await gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(models, 'base') } })).data!.registerModel.model.id;
    const fts: string[] = [];
    for (const f of [1, 2]) fts.push((await gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: `ft-${f}`, kind: 'FINETUNE', path: join(models, `finetune-${f}`), parentIds: [base] } })).data!.registerModel.model.id);
    const databaseUrl = runningEmbeddedDatabase(dataDir)!;
    const startSecond = () => (second = spawnLogged([WORKER], { ...env, DATABASE_URL: databaseUrl, APL_MERGE_OUTPUT_DIR: join(dataDir, 'outputs') }, log));
    startSecond();

    const began = performance.now();
    chaos = true;
    let kills = 0;
    let databaseKilled = false;
    const chaosLoop = (async () => {
      for (let round = 0; chaos; round++) {
        await new Promise((r) => setTimeout(r, killEvery * 1000));
        if (!chaos) break;
        const pidFile = join(dataDir, 'postgres', 'postmaster.pid');
        if (!databaseKilled && round >= 3 && existsSync(pidFile)) {
          process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGKILL');
          databaseKilled = true;
          continue;
        }
        if (round % 2 === 0) {
          const pids = [...log.join('\n').matchAll(/worker: worker [^:\s]+:(\d+) \(backend/g)].map((m) => Number(m[1]));
          try {
            process.kill(pids[pids.length - 1], 'SIGKILL');
            kills++;
          } catch {
            // already gone
          }
        } else if (second) {
          second.kill('SIGKILL');
          kills++;
          await new Promise((r) => setTimeout(r, 500));
          startSecond();
        }
      }
    })();

    const ids: string[] = [];
    let next = 0;
    let refusedUnavailable = 0;
    let refusedLimited = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < merges) {
          const n = next++;
          for (;;) {
            const result = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
              input: { name: `soak-${n}`, method: 'task_arithmetic', baseModelId: base, models: fts.map((modelId) => ({ modelId, parameters: { weight: 0.5 } })) },
            }).catch(() => ({ data: undefined, errors: [{ message: 'connection', extensions: { code: 'SERVICE_UNAVAILABLE' } }] }));
            if (result.data) {
              ids.push(result.data.startMerge.merge.id);
              break;
            }
            const code = result.errors?.[0]?.extensions.code;
            // What a well-behaved client does: wait and send again when the service is away or the token has enough jobs queued.
            if (code === 'RATE_LIMITED') refusedLimited++;
            else if (code === 'SERVICE_UNAVAILABLE') refusedUnavailable++;
            else throw new Error(JSON.stringify(result.errors));
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      }),
    );
    type Row = { id: string; status: string; attempts: number; outputName: string };
    let rows: Row[] = [];
    await until(async () => {
      const result = await gql<{ merges: Row[] }>('{ merges(first: 500) { nodes { id status attempts outputName } } }').catch(() => ({ data: undefined }));
      rows = result.data?.merges ?? rows;
      return rows.length >= merges && rows.every((r) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(r.status));
    }, 'every merge to end', 15 * 60_000);
    chaos = false;
    await chaosLoop;
    const seconds = (performance.now() - began) / 1000;
    const modelsNow = (await gql<{ models: { nodes: Array<{ name: string }> } }>('{ models(first: 500) { nodes { name } } }')).data!.models.nodes;
    const completed = rows.filter((r) => r.status === 'COMPLETED');
    const duplicates = modelsNow.length - new Set(modelsNow.map((m) => m.name)).size + completed.filter((r) => !modelsNow.some((m) => m.name === r.outputName)).length;
    const outputs = join(dataDir, 'outputs', 'merges');
    const entries = existsSync(outputs) ? readdirSync(outputs) : [];
    const orphans = entries.filter((e) => e.startsWith('.') || !completed.some((r) => r.id === e));
    console.log(`${merges} merges from ${clients} clients over two workers; ${kills} workers killed (one every ${killEvery} s), the database killed once; ${refusedUnavailable} requests answered SERVICE_UNAVAILABLE and ${refusedLimited} RATE_LIMITED (20 active jobs per token), each sent again`);
    console.log('| merges | completed | failed | retries | duplicates | orphans | time |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(`| ${rows.length} | ${completed.length} | ${rows.filter((r) => r.status === 'FAILED').length} | ${rows.reduce((a, r) => a + Math.max(0, r.attempts - 1), 0)} | ${duplicates} | ${orphans.length} | ${seconds.toFixed(0)} s |`);
    if (duplicates > 0 || orphans.length > 0) {
      console.log(`orphans: ${orphans.join(', ')}`);
      process.exitCode = 1;
    }
  } finally {
    chaos = false;
    second?.kill('SIGKILL');
    const exited = new Promise((r) => start.once('exit', r));
    start.kill('SIGTERM');
    await exited;
    rmSync(parent, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  console.error(lastLog.slice(-40).join('\n'));
  process.exitCode = 1;
});
