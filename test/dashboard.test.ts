/**
 * The dashboard in a real headless Chromium (Debian's, driven by playwright-core) against a real
 * API server, PostgreSQL and worker process: signing in from the `#token=` address, the models
 * table (search, filter), a model's page (checkpoint, tensors), a merge's live page reaching
 * COMPLETED, cancel and retry, and a viewer who is offered neither. No console errors.
 * Without /usr/bin/chromium the suite is skipped (saying so) unless APL_MERGE_REQUIRE_BROWSER=1,
 * which CI sets after installing it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Browser, Page } from 'playwright-core';
import { CHROMIUM, HAS_BROWSER, launchBrowser } from './helpers/browser';
import { Random } from '../src/engine/kernels/random';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { tinyFamily } from './helpers/tiny-models';
import { testToken } from './helpers/tokens';
import { WorkerProcess } from './helpers/worker-process';

const suite = HAS_BROWSER ? describe : describe.skip;
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
/** axe-core's WCAG 2 A/AA rules (contrast, labels, names, …) on the page as it is: the violations, by rule and element. */
const accessibilityProblems = async (page: Page): Promise<string[]> => {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const page = globalThis as unknown as { document: unknown; axe: { run: (context: unknown, options: unknown) => Promise<{ violations: Array<{ id: string; nodes: Array<{ target: string[] }> }> }> } };
    return page.axe.run(page.document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
  });
  return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
};
/** APL_MERGE_UPDATE_DOCS=1 also writes the README's screenshots (docs/dashboard-*.png) from this run. */
const screenshot = async (page: Page, name: string) => {
  if (process.env.APL_MERGE_UPDATE_DOCS === '1') await page.screenshot({ path: join(__dirname, '..', 'docs', `dashboard-${name}.png`) });
};
jest.setTimeout(120000);

suite(HAS_BROWSER ? 'the dashboard' : `the dashboard — skipped: no ${CHROMIUM} (apt-get install chromium)`, () => {
  let platform: TestPlatform;
  let browser: Browser;
  let worker: WorkerProcess | undefined;
  let origin: string;
  const problems: string[] = [];
  const accessibility: string[] = [];
  const ids: Record<string, string> = {};

  const open = async (token?: string): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page: ${err.message}`));
    await page.goto(token ? `${origin}/#token=${token}` : `${origin}/`);
    return page;
  };

  beforeAll(async () => {
    platform = await startTestPlatform();
    origin = platform.server.url.replace(/\/graphql$/, '');
    const dir = join(platform.root, 'models');
    tinyFamily({ seed: 3, dir, tasks: [{ name: 'alpha', classes: 3 }, { name: 'beta', classes: 2 }] });
    const register = async (name: string, kind: string, path: string, parentIds?: string[]) =>
      (await platform.gql<{ registerModel: { model: { id: string } } }>('mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }', { input: { name, kind, path, parentIds, evaluate: false } })).data!.registerModel.model.id;
    ids.base = await register('base', 'BASE', join(dir, 'base'));
    ids.alpha = await register('ft-alpha', 'FINETUNE', join(dir, 'alpha'), [ids.base]);
    ids.beta = await register('ft-beta', 'FINETUNE', join(dir, 'beta'), [ids.base]);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await platform?.stop();
  });

  const startMerge = async (name: string) =>
    (await platform.gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
      input: { name, method: 'ties', baseModelId: ids.base, models: [{ modelId: ids.alpha, parameters: { weight: 1, density: 0.5 } }, { modelId: ids.beta, parameters: { weight: 1, density: 0.5 } }] },
    })).data!.startMerge.merge.id;

  it('signs in from the #token= address and lists, searches and filters the models', async () => {
    const token = await testToken(platform.prisma, 'ADMIN', 'dash-admin');
    const page = await open(token);
    await page.getByText('Signed in as dash-admin (admin)').waitFor();
    // The token left the address bar.
    expect(page.url()).not.toContain(token);
    await page.getByRole('link', { name: 'ft-alpha' }).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(3);
    await screenshot(page, 'models');
    accessibility.push(...(await accessibilityProblems(page)).map((p) => `models: ${p}`));
    await page.getByLabel('Search').fill('beta');
    await page.getByText('1 model(s)').waitFor();
    expect(await page.locator('tbody tr').allInnerTexts()).toEqual([expect.stringContaining('ft-beta')]);
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Kind').selectOption('BASE');
    await page.getByText('1 model(s)').waitFor();
    expect(await page.locator('tbody tr').allInnerTexts()).toEqual([expect.stringContaining('base')]);
    await page.getByLabel('Kind').selectOption('');
    await page.getByLabel('Below').selectOption({ label: 'base' });
    await page.getByText('3 model(s)').waitFor();
    await page.getByLabel('Created by').fill('nobody');
    await page.getByText('0 model(s)').waitFor();
    await page.getByLabel('Created by').fill('');
    await page.getByLabel('Tags').fill('no-such-tag');
    await page.getByText('0 model(s)').waitFor();
    await page.context().close();
  });

  it("opens a model's page: checkpoint, parents, tensors", async () => {
    const page = await open(await testToken(platform.prisma, 'VIEWER', 'dash-viewer-1'));
    await page.getByRole('link', { name: 'ft-alpha' }).click();
    await page.getByRole('heading', { name: 'ft-alpha' }).waitFor();
    await page.getByText('trunk.layers.0.weight').waitFor();
    // A viewer is not offered the merge form.
    expect(await page.getByRole('link', { name: 'New merge' }).count()).toBe(0);
    await screenshot(page, 'model');
    accessibility.push(...(await accessibilityProblems(page)).map((p) => `model: ${p}`));
    expect(await page.getByRole('link', { name: 'base', exact: true }).count()).toBe(1);
    expect(await page.getByRole('link', { name: 'below base' }).count()).toBe(1);
    await page.context().close();
  });

  it("follows a merge live to COMPLETED on the job's page", async () => {
    const page = await open(await testToken(platform.prisma, 'OPERATOR', 'dash-operator'));
    // The jobs list is open before the job exists: it appears, and its status changes stream in.
    await page.goto(`${origin}/#/jobs`);
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();
    worker = await platform.startWorker();
    const id = await startMerge('dash-ties');
    await page.getByTestId(`status-${id}`).getByText('COMPLETED').waitFor({ timeout: 60000 });
    await page.goto(`${origin}/#/jobs/${id}`);
    await page.getByTestId('job-status').getByText('COMPLETED').waitFor({ timeout: 60000 });
    const events = await page.getByTestId('events').locator('li').allInnerTexts();
    expect(events[0]).toMatch(/^QUEUED status/);
    expect(events.at(-1)).toMatch(/^COMPLETED status .*output model dash-ties/);
    // Every event once, in order.
    const stored = await platform.prisma.jobEvent.count({ where: { jobId: id } });
    expect(events).toHaveLength(stored);
    await screenshot(page, 'job');
    accessibility.push(...(await accessibilityProblems(page)).map((p) => `job: ${p}`));
    await page.context().close();
  });

  it('starts an APL merge through the form (a server error shown by its field first), watches it to COMPLETED and opens the merged model', async () => {
    worker ??= await platform.startWorker();
    const dir = join(platform.root, 'models');
    for (const task of ['alpha', 'beta']) await platform.gql('mutation($i: RegisterTaskInput!) { registerTask(input: $i) { task { id } } }', { i: { name: task, path: join(dir, `${task}.safetensors`) } });
    const page = await open(await testToken(platform.prisma, 'OPERATOR', 'dash-operator-2'));
    await page.getByRole('link', { name: 'New merge' }).click();
    // Every data-aware method offers a probe task per model; only APL also takes an analysis; TIES reads no data.
    await page.locator('#method').selectOption('adamerging');
    await page.locator('#probe-0').waitFor();
    expect(await page.locator('#analysis-0').count()).toBe(0);
    await page.locator('#method').selectOption('ties');
    await page.locator('#model-0-density').waitFor();
    expect(await page.locator('#probe-0').count()).toBe(0);
    await page.locator('#method').selectOption('apl');
    await page.locator('#base').selectOption({ label: 'base' });
    await page.locator('#name').fill('dash-apl');
    await page.locator('#model-0').selectOption({ label: 'ft-alpha' });
    // No probe task yet: the server's refusal is shown next to the model it names.
    await page.getByRole('button', { name: 'Start merge' }).click();
    const refusal = page.locator('fieldset', { hasText: 'Model 1' }).getByRole('alert');
    await refusal.waitFor();
    expect(await refusal.innerText()).toMatch(/models\[0\].*apl needs per-model "probe"/);
    await page.locator('#probe-0').selectOption({ label: 'alpha' });
    await page.getByRole('button', { name: 'Add a model' }).click();
    await page.locator('#model-1').selectOption({ label: 'ft-beta' });
    await page.locator('#probe-1').selectOption({ label: 'beta' });
    await page.locator('#model-0-density').fill('0.5');
    await page.getByRole('button', { name: 'Start merge' }).click();
    await page.waitForURL(/#\/jobs\//);
    await page.getByTestId('job-status').getByText('COMPLETED').waitFor({ timeout: 90000 });
    await page.getByRole('link', { name: 'dash-apl' }).click();
    await page.getByRole('heading', { name: 'dash-apl' }).waitFor();
    expect(await page.getByRole('link', { name: 'ft-alpha' }).count()).toBe(1);
    // Its scores beside its parents': a column per parent, a row per task and split the merge was scored on.
    await page.getByRole('columnheader', { name: 'ft-alpha (merge)' }).waitFor();
    const scored = await platform.prisma.evaluation.count({ where: { model: { name: 'dash-apl' } } });
    expect(scored).toBeGreaterThan(0);
    expect(await page.locator('table').first().locator('tbody tr').count()).toBe(scored);
    await page.context().close();
    const merge = await platform.prisma.merge.findFirstOrThrow({ where: { outputName: 'dash-apl' }, include: { inputs: true } });
    expect(merge).toMatchObject({ method: 'apl', status: 'COMPLETED' });
    const taskId = async (name: string) => (await platform.prisma.task.findUniqueOrThrow({ where: { name } })).id;
    expect(merge.inputs.filter((i) => !i.isBase).map((i) => i.parameters)).toEqual([{ density: 0.5, probeTaskId: await taskId('alpha') }, { probeTaskId: await taskId('beta') }]);
  });

  it('draws the lineage graph below a base, highlights a model\'s relatives, and shows importance, the leaderboard and the workers', async () => {
    const page = await open(await testToken(platform.prisma, 'OPERATOR', 'dash-operator-3'));
    await page.goto(`${origin}/#/lineage/${ids.base}`);
    const graph = page.getByRole('group', { name: 'lineage graph' });
    await graph.waitFor();
    // base, two fine-tunes and the two merges so far.
    expect(await graph.getByRole('button').count()).toBe(await platform.prisma.model.count());
    await graph.getByRole('button', { name: 'ft-alpha (finetune)' }).click();
    const merges = await platform.prisma.lineageEdge.count({ where: { parent: { name: 'ft-alpha' } } });
    expect(await page.getByTestId('selection').innerText()).toBe(`Selected ft-alpha: 1 ancestor(s), ${merges} descendant(s)`);
    await screenshot(page, 'lineage');
    accessibility.push(...(await accessibilityProblems(page)).map((p) => `lineage: ${p}`));
    // By keyboard: a node takes the focus, Space selects it, Enter opens it.
    await graph.getByRole('button', { name: 'dash-apl (merge)' }).focus();
    await page.keyboard.press(' ');
    await page.getByTestId('selection').getByText('Selected dash-apl').waitFor();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'dash-apl' }).waitFor();

    // An analysis started from the Importance page, then its charts.
    await page.getByRole('link', { name: 'Importance' }).click();
    await page.locator('#analysis-modelId').selectOption({ label: 'ft-alpha' });
    await page.locator('#analysis-taskId').selectOption({ label: 'alpha' });
    await page.locator('#analysis-level').selectOption('LAYER');
    await page.getByRole('button', { name: 'Start analysis' }).click();
    await page.waitForURL(/#\/jobs\//);
    const analysisId = page.url().split('/').pop()!;
    await page.getByTestId('job-status').getByText('COMPLETED').waitFor({ timeout: 60000 });
    await page.goto(`${origin}/#/analyses/${analysisId}`);
    const bars = page.getByRole('img', { name: 'mean importance per layer' });
    await bars.waitFor();
    expect(await bars.locator('rect').count()).toBe(2);
    expect(await page.getByRole('img', { name: 'histogram of partition importance' }).locator('rect').count()).toBeGreaterThan(0);
    await screenshot(page, 'importance');
    accessibility.push(...(await accessibilityProblems(page)).map((p) => `importance: ${p}`));

    await page.goto(`${origin}/#/leaderboard/${ids.base}`);
    await page.getByRole('link', { name: 'dash-apl' }).waitFor();
    await page.goto(`${origin}/#/workers`);
    await page.locator('tbody tr', { hasText: 'yes' }).first().waitFor();
    await page.context().close();
  });

  it('offers cancel and retry to an operator, and neither to a viewer', async () => {
    await worker!.stop();
    worker = undefined;
    const id = await startMerge('dash-queued');
    const viewer = await open(await testToken(platform.prisma, 'VIEWER', 'dash-viewer-2'));
    await viewer.goto(`${origin}/#/jobs/${id}`);
    await viewer.getByTestId('job-status').getByText('QUEUED').waitFor();
    expect(await viewer.getByRole('button', { name: 'Cancel' }).count()).toBe(0);
    const operator = await open(await testToken(platform.prisma, 'ADMIN', 'dash-admin-2'));
    await operator.goto(`${origin}/#/jobs/${id}`);
    await operator.getByRole('button', { name: 'Cancel' }).click();
    await operator.getByTestId('job-status').getByText('CANCELLED').waitFor();
    await operator.getByRole('button', { name: 'Retry' }).waitFor();
    await viewer.getByTestId('job-status').getByText('CANCELLED').waitFor();
    expect(await viewer.getByRole('button', { name: 'Retry' }).count()).toBe(0);
    await viewer.context().close();
    await operator.context().close();
  });

  it('stays usable with 1,000 more models and a lineage of 300 (times printed, not asserted)', async () => {
    // Rows written straight to the store, as a registry that size would hold them.
    const seeded = new Random(7, 'dashboard-lineage');
    const random = (n: number) => seeded.nextUint32() % n;
    const checkpoint = (await platform.prisma.model.findUniqueOrThrow({ where: { id: ids.base } })).checkpointId;
    const big = await platform.prisma.model.create({ data: { name: 'big-base', kind: 'BASE', architecture: 'mlp', checkpointId: checkpoint } });
    const tree = [big.id];
    for (let i = 0; i < 1000; i++) {
      const inTree = i < 299;
      const model = await platform.prisma.model.create({ data: { name: `bulk-${String(i).padStart(4, '0')}`, kind: inTree && i % 10 === 9 ? 'MERGE' : 'FINETUNE', architecture: 'mlp', checkpointId: checkpoint } });
      if (!inTree) continue;
      await platform.prisma.lineageEdge.create({ data: { parentId: tree[random(tree.length)], childId: model.id, relation: 'finetune' } });
      tree.push(model.id);
    }
    const page = await open(await testToken(platform.prisma, 'VIEWER', 'dash-viewer-big'));
    const timed = async (what: () => Promise<unknown>) => {
      const started = Date.now();
      await what();
      return Date.now() - started;
    };
    const table = await timed(async () => {
      await page.goto(`${origin}/#/models`);
      await page.getByRole('link', { name: 'bulk-0000' }).waitFor();
    });
    const search = await timed(async () => {
      await page.getByLabel('Search').fill('bulk-0999');
      await page.getByText('1 model(s)').waitFor();
    });
    const lineage = await timed(async () => {
      await page.goto(`${origin}/#/lineage/${big.id}`);
      await page.getByText('300 models, 299 edges').waitFor();
    });
    const graph = page.getByRole('group', { name: 'lineage graph' });
    const select = await timed(async () => {
      await graph.getByRole('button', { name: 'bulk-0000 (finetune)' }).click();
      await page.getByTestId('selection').waitFor();
    });
    const zoom = await timed(async () => {
      await page.getByRole('button', { name: 'Zoom in' }).click();
      await page.getByRole('button', { name: 'Reset view' }).click();
    });
    process.stdout.write(`dashboard at 1,000+ models, 300-node lineage: models table ${table} ms, search ${search} ms, lineage graph ${lineage} ms, select a node ${select} ms, zoom and reset ${zoom} ms\n`);
    await page.context().close();
  });

  it('raised no console error on any page, and axe-core found no WCAG 2 A/AA violation on the main pages', () => {
    expect(problems).toEqual([]);
    expect(accessibility).toEqual([]);
  });
});
