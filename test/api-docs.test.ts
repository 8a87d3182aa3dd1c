/**
 * docs/api.md's examples run as written: each script in docs/examples is a real Node process
 * against a live server (PostgreSQL, an API server and a worker process), in the order the
 * document gives them, and prints what the document shows — after ids, times, secrets and worker
 * names are masked, and with a job's in-between progress events left out (how many a job emits
 * depends on the machine's speed). The document shows each script's code as it is in the file,
 * and the README's client snippet is one of them, as it is. APL_MERGE_UPDATE_DOCS=1 writes the
 * outputs of this run into the document instead of comparing.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { tinyFamily } from './helpers/tiny-models';
import { testToken } from './helpers/tokens';
import { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(180000);
const run = promisify(execFile);
const ROOT = join(__dirname, '..');
const DOC = join(ROOT, 'docs', 'api.md');
const EXAMPLES = ['tokens', 'register', 'lineage', 'merge', 'analysis'];

/** What varies from run to run, masked; progress events between a job's status changes dropped. */
export function normalise(output: string): string {
  return output
    .split('\n')
    .filter((line) => !/^event RUNNING (?!status )/.test(line))
    .join('\n')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/running (again )?on \S+/g, 'running on <worker>')
    .replace(/ in \d+(\.\d+)? s\b/g, ' in <seconds> s')
    // Scores to 4 significant digits: the last bits of float32 sums may differ between backends.
    .replace(/-?\d+\.\d{5,}(e-?\d+)?/g, (x) => String(Number(Number(x).toPrecision(4))))
    .trim();
}

/** The ```text block following "Output of `docs/examples/NAME.mjs`" in the document. */
function outputBlock(doc: string, name: string): { start: number; end: number; text: string } {
  const marker = `Output of \`docs/examples/${name}.mjs\``;
  const at = doc.indexOf(marker);
  if (at < 0) throw new Error(`docs/api.md has no "${marker}"`);
  const start = doc.indexOf('```text\n', at) + '```text\n'.length;
  const end = doc.indexOf('\n```', start);
  return { start, end, text: doc.slice(start, end) };
}

let platform: TestPlatform;
let worker: WorkerProcess;
const outputs = new Map<string, string>();

beforeAll(async () => {
  platform = await startTestPlatform();
  tinyFamily({ seed: 11, dir: join(platform.root, 'models'), tasks: [{ name: 'alpha', classes: 3 }, { name: 'beta', classes: 2 }] });
  worker = await platform.startWorker({ APL_MERGE_BACKEND: 'wasm' });
  const token = await testToken(platform.prisma, 'ADMIN', 'admin');
  for (const name of EXAMPLES) {
    const env = { ...process.env, APL_MERGE_URL: platform.server.url, APL_MERGE_TOKEN: token, APL_MERGE_MODELS: join(platform.root, 'models') };
    const { stdout } = await run(process.execPath, [join(ROOT, 'docs', 'examples', `${name}.mjs`)], { env, cwd: ROOT, timeout: 120000 }).catch((err: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`docs/examples/${name}.mjs failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}\nworker:\n${worker.output()}`);
    });
    outputs.set(name, stdout);
  }
  if (process.env.APL_MERGE_UPDATE_DOCS === '1') {
    let doc = readFileSync(DOC, 'utf8');
    for (const name of EXAMPLES) {
      const block = outputBlock(doc, name);
      doc = doc.slice(0, block.start) + outputs.get(name)!.trim() + doc.slice(block.end);
    }
    writeFileSync(DOC, doc);
  }
});

afterAll(() => platform?.stop());

describe.each(EXAMPLES)('docs/examples/%s.mjs', (name) => {
  it('is shown in docs/api.md as it is in the file', () => {
    expect(readFileSync(DOC, 'utf8')).toContain(readFileSync(join(ROOT, 'docs', 'examples', `${name}.mjs`), 'utf8').trim());
  });

  it('prints what docs/api.md says it prints', () => {
    expect(normalise(outputs.get(name)!)).toBe(normalise(outputBlock(readFileSync(DOC, 'utf8'), name).text));
  });
});

it("the README's client example is docs/examples/analysis.mjs, as it is", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const file of ['analysis.mjs']) expect(readme).toContain(readFileSync(join(ROOT, 'docs', 'examples', file), 'utf8').trim());
});
