/**
 * Registering a large checkpoint while others query (README: "Faults and recovery"). A real
 * `apl-merge serve` process; a checkpoint of `--gib` GiB (one F32 tensor, a sparse file, so the
 * disk holds almost nothing of it) is registered by mutation — its header validated and every
 * byte hashed — while `--clients` clients send a small query back to back. Reports the small
 * queries' latency during the registration (p50, p99, max) and how long the registration took.
 *
 *   npm run build && node dist/bench/register-latency.js [--gib 10 --clients 10]
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { flag, freshDatabase, percentile, startServer } from './lib/platform';

async function main(): Promise<void> {
  const gib = flag('gib', 10);
  const clients = flag('clients', 10);
  const dir = mkdtempSync(join(tmpdir(), 'apl-merge-register-'));
  const bytes = Math.round(gib * 2 ** 30 / 4) * 4;
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [bytes / 4], data_offsets: [0, bytes] } }));
  const file = join(dir, 'model.safetensors');
  const fd = openSync(file, 'w');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  writeSync(fd, length);
  writeSync(fd, header);
  ftruncateSync(fd, 8 + header.length + bytes);
  closeSync(fd);
  const database = await freshDatabase('apl_merge_bench');
  const server = await startServer(database.url, 'ADMIN', ['--data-roots', dir]);
  const post = async (query: string, variables: Record<string, unknown> = {}) => {
    const response = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` }, body: JSON.stringify({ query, variables }) });
    const body = (await response.json()) as { errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
  };
  try {
    for (let i = 0; i < 50; i++) await post('{ viewer { role } }');
    // The same clients for a few seconds with nothing else going on: the latency the load itself causes.
    const quiet: number[] = [];
    const quietUntil = performance.now() + 5000;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < quietUntil) {
          const t = performance.now();
          await post('{ viewer { role } }');
          quiet.push(performance.now() - t);
        }
      }),
    );
    quiet.sort((a, b) => a - b);
    let registering = true;
    const latencies: number[] = [];
    const started = performance.now();
    const registration = post('mutation($p: String!) { registerModel(input: { name: "big", kind: BASE, path: $p }) { model { id } } }', { p: dir }).finally(() => (registering = false));
    await Promise.all([
      registration,
      ...Array.from({ length: clients }, async () => {
        while (registering) {
          const t = performance.now();
          await post('{ viewer { role } }');
          latencies.push(performance.now() - t);
        }
      }),
    ]);
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(`registered a ${gib} GiB checkpoint in ${seconds.toFixed(1)} s (${(gib / seconds).toFixed(2)} GiB/s hashed) while ${clients} clients queried`);
    console.log('| small queries | count | p50 | p99 | max |');
    console.log('|---|---|---|---|---|');
    console.log(`| without a registration (5 s) | ${quiet.length} | ${percentile(quiet, 50).toFixed(1)} ms | ${percentile(quiet, 99).toFixed(1)} ms | ${quiet[quiet.length - 1].toFixed(1)} ms |`);
    console.log(`| during the registration | ${latencies.length} | ${percentile(latencies, 50).toFixed(1)} ms | ${percentile(latencies, 99).toFixed(1)} ms | ${latencies[latencies.length - 1].toFixed(1)} ms |`);
  } finally {
    await server.stop();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
