/**
 * What a refused request costs the server (README: "Security"). A real `apl-merge serve` process
 * with the default limits; each request is sent `--repeat` times, one at a time, and the time to
 * its answer is measured at the client: median and p99 in ms, with the answer's code. A small
 * accepted query is timed beside them for scale, and the server's RSS is read before and after.
 *
 *   npm run build && node dist/bench/security-limits.js [--repeat 50]
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { flag, freshDatabase, percentile, startServer } from './lib/platform';

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function main(): Promise<void> {
  const repeat = flag('repeat', 50);
  const database = await freshDatabase('apl_merge_bench');
  const server = await startServer(database.url, 'OPERATOR');
  try {
    const hop = (n: number): string => (n === 0 ? 'name' : `${n % 2 ? 'children' : 'parents'} { model { ${hop(n - 1)} } }`);
    const id = '3faebb57-6ce4-4d9b-91d7-d65a60b7d11a';
    const cases: Array<{ name: string; body: string; token?: string | null }> = [
      { name: 'accepted: { viewer { name role } }', body: JSON.stringify({ query: '{ viewer { name role } }' }) },
      { name: `alternating children/parents (${`{ model(id: "${id}") { ${hop(10)} } }`.length} bytes)`, body: JSON.stringify({ query: `{ model(id: "${id}") { ${hop(10)} } }` }) },
      { name: '10,000 aliases', body: JSON.stringify({ query: `{ ${Array.from({ length: 10_000 }, (_, i) => `a${i}: methods { name }`).join(' ')} }` }) },
      { name: '31 aliases', body: JSON.stringify({ query: `{ ${Array.from({ length: 31 }, (_, i) => `a${i}: viewer { role }`).join(' ')} }` }) },
      { name: 'cost: models(first: 500) { … children { … children } }', body: JSON.stringify({ query: '{ models(first: 500) { nodes { children { model { children { model { name } } } } } } }' }) },
      { name: 'cyclic introspection (types → fields → type → fields …)', body: JSON.stringify({ query: '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }' }) },
      { name: 'no token', body: JSON.stringify({ query: '{ viewer { role } }' }), token: null },
      { name: 'unknown token', body: JSON.stringify({ query: '{ viewer { role } }' }), token: 'aplm_not-a-token' },
      { name: 'malformed JSON body', body: '{"query": "{ viewer' },
    ];
    const rows: string[] = [];
    const rssBefore = rssOf(server.child.pid!);
    for (const c of cases) {
      const times: number[] = [];
      let code = '';
      const token = c.token === undefined ? server.token : c.token;
      for (let i = 0; i < repeat; i++) {
        const started = performance.now();
        const response = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: c.body });
        const json = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
        times.push(performance.now() - started);
        code = `${response.status} ${json.errors?.[0]?.extensions?.code ?? 'OK'}`;
      }
      times.sort((a, b) => a - b);
      rows.push(`| ${c.name} | ${code} | ${percentile(times, 50).toFixed(2)} | ${percentile(times, 99).toFixed(2)} |`);
    }
    // Mutations past the burst: RATE_LIMITED (the default burst is 30).
    const mutation = JSON.stringify({ query: `mutation { cancelJob(id: "${id}") { id } }` });
    const limited: number[] = [];
    for (let i = 0; i < 30 + repeat; i++) {
      const started = performance.now();
      const response = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` }, body: mutation });
      await response.json();
      if (response.status === 429) limited.push(performance.now() - started);
    }
    limited.sort((a, b) => a - b);
    rows.push(`| mutations past the burst (${limited.length} of ${30 + repeat} refused) | 429 RATE_LIMITED | ${percentile(limited, 50).toFixed(2)} | ${percentile(limited, 99).toFixed(2)} |`);
    console.log(`${repeat} requests each, one at a time; server RSS ${rssBefore.toFixed(0)} MB before, ${rssOf(server.child.pid!).toFixed(0)} MB after\n`);
    console.log('| request | answer | median ms | p99 ms |');
    console.log('|---|---|---|---|');
    for (const row of rows) console.log(row);
  } finally {
    await server.stop();
    await database.drop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
