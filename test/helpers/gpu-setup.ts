/**
 * Jest's global setup: finds out once, in a child process, whether a WebGPU adapter exists (Dawn
 * through the optional package "webgpu": a GPU, or Mesa's lavapipe), prints its name in the test
 * log, and passes it to the suites in APL_MERGE_TEST_WEBGPU_ADAPTER, so that GPU tests are
 * *skipped* where there is none (and counted so in the summary) instead of passing without
 * running. With APL_MERGE_REQUIRE_WEBGPU=1 (what CI sets) a missing adapter fails the run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const PROBE = `
const { requestGpuAdapter, describeAdapter } = require(process.argv[1]);
requestGpuAdapter().then((adapter) => {
  process.stdout.write(JSON.stringify(adapter ? describeAdapter(adapter) : null));
  process.exit(0);
}, (err) => { process.stdout.write(JSON.stringify({ error: String(err && err.message || err) })); process.exit(0); });
`;

export default function findWebGpuAdapter(): void {
  const dawn = resolve(__dirname, '../../dist/src/engine/gpu/dawn.js');
  if (!existsSync(dawn)) throw new Error(`${dawn} is missing: run npm run build before jest (npm test does)`);
  let found: { description?: string; software?: boolean; error?: string } | null;
  try {
    found = JSON.parse(execFileSync(process.execPath, ['-e', PROBE, dawn], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 })) as typeof found;
  } catch (err) {
    found = { error: (err as Error).message };
  }
  if (found && found.description) {
    process.env.APL_MERGE_TEST_WEBGPU_ADAPTER = `${found.description}${found.software ? ' (software)' : ''}`;
    console.log(`\nWebGPU adapter for the GPU suites: ${process.env.APL_MERGE_TEST_WEBGPU_ADAPTER}`);
    return;
  }
  process.env.APL_MERGE_TEST_WEBGPU_ADAPTER = '';
  const why = found?.error ? `no WebGPU adapter (${found.error})` : 'no WebGPU adapter';
  if (process.env.APL_MERGE_REQUIRE_WEBGPU === '1') throw new Error(`${why}, and APL_MERGE_REQUIRE_WEBGPU=1 requires one: install Mesa's lavapipe (scripts/install-lavapipe.sh) or run on a GPU`);
  console.log(`\n${why}: the GPU suites are skipped`);
}
