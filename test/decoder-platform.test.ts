/**
 * Decoder LMs through the platform, all real (PostgreSQL, the API server, a worker process): a
 * small LM zoo's Llama checkpoints and JSONL tasks registered; a TIES merge scored on the
 * registered LM tasks (exact match of the greedy completion, re-computed here by an independent
 * forward pass); an APL merge with probe tasks, located on the merged model and with coefficients fitted on them; an importance analysis and its per-layer view; and
 * the dashboard's importance view of a decoder's analyses in Debian's Chromium (skipped without it,
 * unless APL_MERGE_REQUIRE_BROWSER=1).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImportance } from '../src/engine/apl/artifact';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { buildLmZoo, LM_SCALES } from '../src/engine/zoo/lm';
import { ZooManifest } from '../src/engine/zoo/vision';
import { readAllTensors } from './helpers/files';
import { referenceLogits } from './helpers/decoder-models';
import { subscribe } from './helpers/graphql';
import { HAS_BROWSER, launchBrowser } from './helpers/browser';
import { testToken } from './helpers/tokens';
import { startTestPlatform, TestPlatform } from './helpers/platform';

jest.setTimeout(240000);

let platform: TestPlatform;
let zoo: ZooManifest;
const ids: { base: string; finetunes: Record<string, string>; tasks: Record<string, string>; layerAnalysis?: string } = { base: '', finetunes: {}, tasks: {} };

beforeAll(async () => {
  platform = await startTestPlatform();
  const scale = { ...LM_SCALES.quick, tasks: ['arithmetic', 'reverse'], pretrainSentences: 600, pretrainSteps: 40, finetuneSteps: 120, sizes: { train: 400, probe: 12, validation: 20, test: 40, ood: 40 } };
  zoo = await buildLmZoo({ out: join(platform.root, 'zoo'), quick: true, seed: 4, scale });
  await platform.startWorker();
  const { gql } = platform;
  const register = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
  const base = await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: 'llama-base', kind: 'BASE', path: join(platform.root, 'zoo', zoo.base) } });
  expect(base.errors).toBeUndefined();
  ids.base = base.data!.registerModel.model.id;
  for (const entry of zoo.finetunes) {
    const ft = await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: `llama-${entry.task}`, kind: 'FINETUNE', path: join(platform.root, 'zoo', entry.model), parentIds: [ids.base] } });
    expect(ft.errors).toBeUndefined();
    ids.finetunes[entry.task] = ft.data!.registerModel.model.id;
    const task = await gql<{ registerTask: { task: { id: string; kind: string; classes: number } } }>('mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id kind classes } } }', { input: { name: entry.task, path: join(platform.root, 'zoo', entry.data) } });
    expect(task.errors).toBeUndefined();
    expect(task.data!.registerTask.task).toMatchObject({ kind: 'LANGUAGE_MODEL', classes: entry.classes });
    ids.tasks[entry.task] = task.data!.registerTask.task.id;
  }
});

afterAll(() => platform?.stop());

async function followToEnd(jobId: string): Promise<string[]> {
  const statuses: string[] = [];
  const subscription = subscribe<{ jobProgress: { status: string; message: string } }>(platform.server.url, 'subscription($jobId: ID!) { jobProgress(jobId: $jobId) { status message } }', { jobId }, (d) => statuses.push(`${d.jobProgress.status} ${d.jobProgress.message}`), platform.token);
  await subscription.done;
  await subscription.close();
  return statuses;
}

/** Exact match of the greedy completion, by the float64 reference forward pass over the checkpoint's tensors. */
function referenceExactMatch(modelDir: string, dataFile: string, split: string): number {
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const params = readAllTensors(join(modelDir, 'model.safetensors'));
  const data = getSplit(loadTaskData(dataFile), split);
  const L = data.exampleShape[0];
  let answered = 0;
  for (let i = 0; i < data.count; i++) {
    const ids = Array.from(data.inputs.subarray(i * L, (i + 1) * L));
    const labels = data.labels.subarray(i * L, (i + 1) * L);
    const logits = referenceLogits(config, params, [ids])[0];
    let right = true;
    for (let t = 1; t < L; t++) if (labels[t] !== -100 && logits[t - 1].indexOf(Math.max(...logits[t - 1])) !== labels[t]) right = false;
    if (right) answered++;
  }
  return answered / data.count;
}

it('merges decoder fine-tunes with TIES and scores the merge on the registered LM tasks', async () => {
  const { gql } = platform;
  const tasks = zoo.finetunes.map((f) => f.task);
  const started = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { name: 'llama-ties', method: 'ties', baseModelId: ids.base, models: tasks.map((t) => ({ modelId: ids.finetunes[t], parameters: { weight: 1, density: 0.5 } })), parameters: { lambda: 1 } },
  });
  expect(started.errors).toBeUndefined();
  const mergeId = started.data!.startMerge.merge.id;
  expect((await followToEnd(mergeId)).at(-1)).toMatch(/^COMPLETED/);
  const merged = await gql<{ merge: { outputModel: { id: string; checkpoint: { uri: string }; evaluations: { nodes: Array<{ split: string; metric: string; value: number; task: { name: string } }> } } } }>(
    'query($id: ID!) { merge(id: $id) { outputModel { id checkpoint { uri } evaluations { nodes { split metric value task { name } } } } } }',
    { id: mergeId },
  );
  const model = merged.data!.merge.outputModel;
  expect(model.evaluations.nodes.map((e) => `${e.task.name}/${e.split}`).sort()).toEqual(tasks.flatMap((t) => [`${t}/ood`, `${t}/test`]).sort());
  const dir = model.checkpoint.uri.replace('file://', '');
  for (const e of model.evaluations.nodes) {
    const entry = zoo.finetunes.find((f) => f.task === e.task.name)!;
    expect(e.metric).toBe('accuracy');
    expect(e.value).toBeCloseTo(referenceExactMatch(dir, join(platform.root, 'zoo', entry.data), e.split), 10);
  }
  // The merged checkpoint is still a Hugging Face LlamaForCausalLM.
  expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'] });
  const lineage = await gql<{ lineage: { nodes: Array<{ id: string; kind: string }> } }>('query($id: ID!) { lineage(baseId: $id) { nodes { id kind } } }', { id: ids.base });
  expect(lineage.data!.lineage.nodes).toContainEqual({ id: model.id, kind: 'MERGE' });
});

it('runs APL on decoders with each fine-tune\'s LM probe task, and an importance analysis with its per-layer view', async () => {
  const { gql } = platform;
  const tasks = zoo.finetunes.map((f) => f.task);
  const apl = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { name: 'llama-apl', method: 'apl', baseModelId: ids.base, models: tasks.map((t) => ({ modelId: ids.finetunes[t], probeTaskId: ids.tasks[t], parameters: { weight: 1, density: 0.5 } })), parameters: { level: 'row', estimator: 'gradient', gradient_form: 'signed', locate: 'merged', keep_temperature: 0, lambda: 0.5, coefficients: 'fitted', fit_steps: 20, fit_learning_rate: 0.05 }, seed: 3 },
  });
  expect(apl.errors).toBeUndefined();
  expect((await followToEnd(apl.data!.startMerge.merge.id)).at(-1)).toMatch(/^COMPLETED/);
  // Its coefficients were fitted on the LM probe tasks (token labels), lowering their mean loss.
  const result = await gql<{ merge: { result: { preparation: { fit: { used: boolean; probeLossAtLambda: number; probeLossFitted: number; coefficients: Record<string, number[]> } } } } }>('query($id: ID!) { merge(id: $id) { result } }', { id: apl.data!.startMerge.merge.id });
  // Its rows were located on the merged decoder (every task's LM probe loss), before the fit.
  const located = (result.data!.merge.result.preparation as unknown as { located: { on: string; iterations: Array<{ harmfulPartitions: number[] }> } }).located;
  expect(located.on).toBe('merged');
  expect(located.iterations[0].harmfulPartitions).toHaveLength(tasks.length);
  const fit = result.data!.merge.result.preparation.fit;
  expect(fit.used).toBe(true);
  expect(fit.probeLossFitted).toBeLessThan(fit.probeLossAtLambda);
  expect(fit.coefficients['model.layers.0.self_attn.q_proj.weight']).toHaveLength(tasks.length);

  const task = tasks[0];
  const started = await gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id } } }', {
    input: { modelId: ids.finetunes[task], taskId: ids.tasks[task], level: 'LAYER', estimator: 'EXACT' },
  });
  expect(started.errors).toBeUndefined();
  const analysisId = started.data!.startAnalysis.analysis.id;
  expect((await followToEnd(analysisId)).at(-1)).toMatch(/^COMPLETED/);
  ids.layerAnalysis = analysisId;
  const view = await gql<{ analysis: { status: string; artifactUri: string; layers: Array<{ layer: string; partitions: number; mean: number }> } }>('query($id: ID!) { analysis(id: $id) { status artifactUri layers(score: LOSS_INCREASE) { layer partitions mean } } }', { id: analysisId });
  expect(view.errors).toBeUndefined();
  const layers = view.data!.analysis.layers.map((l) => l.layer);
  expect(layers).toContain('model.layers.0.self_attn.q_proj');
  expect(layers).toContain('model.layers.1.mlp.down_proj');
  expect(layers).toContain('lm_head');
  const artifact = loadImportance(view.data!.analysis.artifactUri.replace('file://', ''));
  expect(view.data!.analysis.layers.map((l) => l.mean)).toEqual(Array.from(artifact.scores.loss_increase!));
});

(HAS_BROWSER ? it : it.skip)("shows a decoder's importance in the dashboard: a row-level gradient analysis started from the form, its charts, and beside it the exact layer-level one", async () => {
  const browser = await launchBrowser();
  const problems: string[] = [];
  try {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page: ${err.message}`));
    await page.goto(`${platform.server.url.replace(/\/graphql$/, '')}/#token=${await testToken(platform.prisma, 'OPERATOR', 'decoder-dash')}`);
    await page.getByRole('link', { name: 'Importance' }).click();
    const task = zoo.finetunes[0].task;
    await page.locator('#analysis-modelId').selectOption({ label: `llama-${task}` });
    await page.locator('#analysis-taskId').selectOption({ label: task });
    await page.locator('#analysis-level').selectOption('ROW');
    await page.locator('#analysis-estimator').selectOption('GRADIENT');
    await page.getByRole('button', { name: 'Start analysis' }).click();
    await page.waitForURL(/#\/jobs\//);
    const analysisId = page.url().split('/').pop()!;
    await page.getByTestId('job-status').getByText('COMPLETED').waitFor({ timeout: 120000 });
    await page.goto(page.url().replace(/#.*$/, `#/analyses/${analysisId}`));

    // A gradient analysis offers the scores it holds, and shows the first of them.
    const bars = page.getByRole('img', { name: 'mean importance per layer' }).first();
    await bars.waitFor();
    expect(await page.getByLabel('Score').locator('option').allInnerTexts()).toEqual(['gradient signed', 'gradient absolute']);
    const view = await platform.gql<{ analysis: { scores: string[]; layers: Array<{ layer: string; top: Array<{ partition: string }> }> } }>('query($id: ID!) { analysis(id: $id) { scores layers(score: GRADIENT_SIGNED, top: 3) { layer top { partition } } } }', { id: analysisId });
    expect(view.data!.analysis.scores).toEqual(['GRADIENT_SIGNED', 'GRADIENT_ABSOLUTE']);
    const layers = view.data!.analysis.layers;
    // One bar per tensor group of the decoder, named as in the checkpoint.
    expect(await bars.locator('rect').count()).toBe(layers.length);
    const titles = await bars.locator('rect title').allTextContents();
    for (const name of ['model.embed_tokens', 'model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj', 'lm_head']) expect(titles.some((t) => t.startsWith(`${name}: `))).toBe(true);
    expect(await page.getByRole('img', { name: 'histogram of partition importance' }).first().locator('rect').count()).toBeGreaterThan(0);
    const topRows = await page.locator('.panel').first().locator('tbody tr').allInnerTexts();
    expect(topRows.length).toBe(layers.reduce((n, l) => n + l.top.length, 0));
    expect(topRows.some((row) => row.includes(layers.find((l) => l.layer === 'model.layers.0.self_attn.q_proj')!.top[0].partition))).toBe(true);

    // Beside it the exact layer-level analysis, which has no gradient scores: it shows its loss increase.
    const exact = (await platform.prisma.importanceAnalysis.findUniqueOrThrow({ where: { id: ids.layerAnalysis! } })).id;
    await page.getByLabel('Compare with').selectOption(exact);
    const second = page.locator('.panel').nth(1);
    await second.getByRole('heading', { name: 'Mean loss increase per layer' }).waitFor();
    await second.getByRole('heading', { name: `llama-${task} on ${task} (exact, layer level)` }).waitFor();
    const exactLayers = (await platform.gql<{ analysis: { layers: unknown[] } }>('query($id: ID!) { analysis(id: $id) { layers { layer } } }', { id: exact })).data!.analysis.layers;
    expect(await second.getByRole('img', { name: 'mean importance per layer' }).locator('rect').count()).toBe(exactLayers.length);
    await page.getByLabel('Score').selectOption('gradient absolute');
    await page.locator('.panel').first().getByRole('heading', { name: 'Mean gradient absolute per layer' }).waitFor();
    await second.getByRole('heading', { name: 'Mean loss increase per layer' }).waitFor();
    expect(problems).toEqual([]);
  } finally {
    await browser.close();
  }
});
