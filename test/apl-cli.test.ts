/** The APL commands of the real CLI (zoo build, importance, bench) and the benchmark's report. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadImportance } from '../src/engine/apl/artifact';
import { runMergingBenchmark } from '../src/engine/benchmark/merging';
import { useBackend } from '../src/engine/tensors/backend';
import { buildVisionZoo, VISION_SCALES } from '../src/engine/zoo/vision';
import { removeTempDirs, tempDir } from './helpers/files';
import { gpuIt } from './helpers/gpu';

afterAll(removeTempDirs);

const BIN = resolve(__dirname, '../bin/apl-merge.js');
const cli = (args: string[]) => {
  const child = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: child.status, stdout: child.stdout, stderr: child.stderr };
};

describe('apl-merge zoo build and importance', () => {
  // Set by the first test, read by the WebGPU one.
  let out = '';
  let artifact = '';
  it('builds the quick vision zoo, then scores a fine-tune with both estimators', async () => {
    out = join(tempDir(), 'zoo');
    const build = cli(['zoo', 'build', '--suite', 'vision', '--quick', '--seed', '3', '--out', out]);
    expect(build.stderr).toBe('');
    expect(build.code).toBe(0);
    expect(build.stdout).toMatch(/building the quick vision zoo .* \(seed 3, backend wasm\)/);
    const manifest = JSON.parse(readFileSync(join(out, 'zoo.json'), 'utf8'));
    expect(manifest.finetunes.map((f: { task: string }) => f.task)).toEqual(VISION_SCALES.quick.tasks);
    // Fine-tuning must have taught every task something well beyond chance.
    for (const f of manifest.finetunes) expect(f.accuracy.test).toBeGreaterThan(f.classes === 2 ? 0.8 : 0.7);
    artifact = join(out, 'rotated-importance');
    const run = cli(['importance', '--base', join(out, 'base'), '--model', join(out, 'finetunes/digits_rotated'), '--probe', join(out, 'tasks/digits_rotated.safetensors'), '--out', artifact]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/exact intervention: 128 partitions in .* partitions\/s(, \d+ unchanged by the fine-tune)?\), clean loss/);
    expect(run.stdout).toMatch(/most important partitions for digits_rotated \(loss increase\):\n {2}trunk\.layers\.\d\[\d+\]/);
    const loaded = loadImportance(`${artifact}.safetensors`);
    expect(Object.keys(loaded.scores).sort()).toEqual(['gradient_absolute', 'gradient_signed', 'kl', 'loss_increase']);
    expect(existsSync(`${artifact}.json`)).toBe(true);
    expect(loaded.metadata.wgsl_exact_partitions).toBeUndefined();
  });

  gpuIt('scores the same fine-tune on WebGPU: the WGSL kernels score the MLP, say so, and agree with WASM', async () => {
    expect(artifact).not.toBe('');
    const loaded = loadImportance(`${artifact}.safetensors`);
    const onGpu = cli(['importance', '--backend', 'webgpu', '--base', join(out, 'base'), '--model', join(out, 'finetunes/digits_rotated'), '--probe', join(out, 'tasks/digits_rotated.safetensors'), '--out', `${artifact}-gpu`]);
    expect(onGpu.code).toBe(0);
    // Partitions the fine-tune left unchanged (dead units) are not run at all.
    const scored = 128 - Number(/(\d+) unchanged by the fine-tune/.exec(onGpu.stdout)?.[1] ?? 0);
    expect(onGpu.stdout).toContain(`WGSL kernels: ${scored} partitions of exact intervention, the gradient pass`);
    const gpuLoaded = loadImportance(`${artifact}-gpu.safetensors`);
    expect(gpuLoaded.metadata).toMatchObject({ backend: 'webgpu', wgsl_exact_partitions: String(scored), wgsl_gradient: 'true' });
    const largest = Math.max(...Array.from(loaded.scores.loss_increase!, Math.abs));
    gpuLoaded.scores.loss_increase!.forEach((v, k) => expect(Math.abs(v - loaded.scores.loss_increase![k])).toBeLessThan(1e-4 * largest));
  });

  it('benches every method on the quick zoo as a real process: a report whose oracle row is the fine-tunes\' own scores', () => {
    expect(out).not.toBe('');
    const report = join(out, 'report.json');
    const run = cli(['bench', '--suite', 'vision', '--zoo', out, '--out', report, '--seeds', '4']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const written = JSON.parse(readFileSync(report, 'utf8'));
    expect(written).toMatchObject({ suite: 'vision', seeds: [4], backend: 'wasm' });
    const methods = written.rows.map((r: { method: string }) => r.method);
    expect(methods).toEqual(['oracle (each fine-tune alone)', 'weight averaging', 'task arithmetic', 'TIES', 'DARE+TA', 'DARE+TIES', 'magnitude', 'APL-exact', 'APL-gradient', 'APL-fisher', 'Fisher merging', 'RegMean', 'AdaMerging (entropy)', 'APL-gradient + RegMean', 'APL-gradient, located on the merged model', 'APL-gradient, hidden units, located on the merged model', 'APL-gradient, fitted coefficients']);
    const manifest = JSON.parse(readFileSync(join(out, 'zoo.json'), 'utf8')) as { finetunes: Array<{ task: string; accuracy: { test: number; ood: number } }> };
    for (const f of manifest.finetunes) expect(written.rows[0].perTask[f.task]).toMatchObject({ test: f.accuracy.test, ood: f.accuracy.ood, normalized: 1 });
    // Every merge is scored on every task, as a fraction, and the table printed says the same.
    for (const row of written.rows) {
      for (const f of manifest.finetunes) expect(row.perTask[f.task].test).toBeGreaterThanOrEqual(0);
      for (const f of manifest.finetunes) expect(row.perTask[f.task].test).toBeLessThanOrEqual(1);
    }
    expect(run.stdout).toContain(`| APL-exact | ${(100 * written.rows[7].avgTest).toFixed(1)} ± 0.0 |`);
    expect(written.fidelity.map((f: { level: string }) => f.level)).toEqual(['model', 'layer', 'row', 'unit']);
    expect(run.stdout).toMatch(new RegExp(`wrote ${report.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(`));
  });

  it('benches chosen rows only (--methods), measuring no importance when none of them reads it, and names the rows when one is unknown', () => {
    expect(out).not.toBe('');
    const report = join(out, 'some-rows.json');
    const run = cli(['bench', '--suite', 'vision', '--zoo', out, '--out', report, '--seeds', '0', '--methods', 'task arithmetic; AdaMerging (entropy)', '--work', join(out, 'some-rows-work')]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const written = JSON.parse(readFileSync(report, 'utf8'));
    expect(written.rows.map((r: { method: string }) => r.method)).toEqual(['oracle (each fine-tune alone)', 'task arithmetic', 'AdaMerging (entropy)']);
    expect(written.fidelity).toEqual([]);
    expect(run.stdout).not.toContain('| level | partitions');
    expect(existsSync(join(out, 'some-rows-work'))).toBe(true);
    const unknown = cli(['bench', '--suite', 'vision', '--zoo', out, '--out', report, '--methods', 'task arithmetic;APL-magic', '--work', join(out, 'some-rows-work')]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/--methods: no row "APL-magic" \(rows: weight averaging; task arithmetic; TIES;/);
  });

  it('measures the fidelity of chosen levels only (--levels), with no merges at all under --methods "", and refuses levels a chosen row cannot do without', () => {
    expect(out).not.toBe('');
    const report = join(out, 'unit-fidelity.json');
    const run = cli(['bench', '--suite', 'vision', '--zoo', out, '--out', report, '--seeds', '0', '--methods', '', '--levels', 'unit', '--work', join(out, 'fidelity-work')]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const written = JSON.parse(readFileSync(report, 'utf8'));
    expect(written.rows.map((r: { method: string }) => r.method)).toEqual(['oracle (each fine-tune alone)']);
    expect(written.fidelity.map((f: { level: string }) => f.level)).toEqual(['unit']);
    // One partition per hidden unit of every fine-tune (the quick zoo's MLP: 128 + 64 units, 4 fine-tunes).
    const manifest = JSON.parse(readFileSync(join(out, 'zoo.json'), 'utf8')) as { finetunes: unknown[] };
    const widths = (JSON.parse(readFileSync(join(out, 'base', 'config.json'), 'utf8')) as { hidden_sizes: number[] }).hidden_sizes;
    expect(written.fidelity[0].partitions).toBe(manifest.finetunes.length * widths.reduce((a, b) => a + b, 0));
    expect(written.fidelity[0].spearman).toBeGreaterThan(0.5);
    expect(run.stdout).toMatch(/\| unit \| \d+ \|/);
    const unknown = cli(['bench', '--suite', 'vision', '--zoo', out, '--out', report, '--methods', '', '--levels', 'unit,neuron', '--work', join(out, 'fidelity-work')]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('--levels: no level "neuron" (levels: model, layer, row, unit)');
    const withoutRows = cli(['bench', '--suite', 'vision', '--zoo', out, '--out', report, '--methods', 'APL-gradient', '--levels', 'unit', '--work', join(out, 'fidelity-work')]);
    expect(withoutRows.code).toBe(1);
    expect(withoutRows.stderr).toContain('--levels must include row: the row "APL-gradient" reads the row-level importance it measures');
  });

  it('refuses to bench a zoo of another suite', () => {
    const zoo = tempDir();
    require('node:fs').writeFileSync(join(zoo, 'zoo.json'), JSON.stringify({ suite: 'vision' }));
    const run = cli(['bench', '--suite', 'text', '--zoo', zoo, '--out', join(zoo, 'report.json')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/zoo.json: a vision zoo, but --suite is text/);
  });
});

describe('merging benchmark', () => {
  it('reports every row, the fidelity per level, the seeds and the hyper-parameters searched', async () => {
    await useBackend('wasm');
    const zoo = tempDir();
    await buildVisionZoo({
      out: zoo,
      quick: true,
      seed: 2,
      scale: { ...VISION_SCALES.quick, tasks: ['digits', 'digit_parity'], hiddenSizes: [16], sizes: { train: 400, probe: 16, validation: 60, test: 60, ood: 60 }, pretrainSteps: 30, finetuneSteps: 30, batchSize: 16 },
    });
    const report = await runMergingBenchmark({ zoo, seeds: [0, 1] });
    expect(report.rows.map((r) => r.method)).toEqual([
      'oracle (each fine-tune alone)',
      'weight averaging',
      'task arithmetic',
      'TIES',
      'DARE+TA',
      'DARE+TIES',
      'magnitude',
      'APL-exact',
      'APL-gradient',
      'APL-fisher',
      'Fisher merging',
      'RegMean',
      'AdaMerging (entropy)',
      'APL-gradient + RegMean',
      'APL-gradient, located on the merged model',
      'APL-gradient, hidden units, located on the merged model',
      'APL-gradient, fitted coefficients',
    ]);
    for (const row of report.rows) {
      expect(Object.keys(row.perTask)).toEqual(['digits', 'digit_parity']);
      expect(row.avgTest).toBeGreaterThan(0);
      expect(row.avgTest).toBeLessThanOrEqual(1);
    }
    // Deterministic methods do not vary with the seed; every method had at most the same budget.
    expect(report.rows.find((r) => r.method === 'TIES')!.avgTestSpread).toBe(0);
    for (const candidates of Object.values(report.hyperparameters)) expect(candidates.length).toBeLessThanOrEqual(report.budget);
    expect(report.rows.find((r) => r.method === 'APL-gradient')!.chosen.map((c) => c.seed)).toEqual([0, 1]);
    expect(report.fidelity.map((f) => f.level)).toEqual(['model', 'layer', 'row', 'unit']);
    const row = report.fidelity.find((f) => f.level === 'row')!;
    expect(row.partitions).toBe(2 * 16);
    expect(row.spearman).toBeGreaterThan(0);
    // The Fisher estimate ranks partitions like the exact loss increase, too (row level only).
    expect(row.spearmanFisher).toBeGreaterThan(0);
    expect(report.fidelity.find((f) => f.level === 'layer')!.spearmanFisher).toBeUndefined();
    expect(Number.isFinite(row.timeRatio) && row.exactPartitionsPerSecond > 0 && row.forwardsPerPartition > 0).toBe(true);
    // The gradient against exact intervention at one forward pass per partition: the measured ratio
    // scaled by what exact intervention really spends per partition; and its own cost in forward passes.
    expect(row.gradientSpeedupAtOnePass).toBeCloseTo(row.timeRatio / row.forwardsPerPartition, 6);
    expect(row.gradientForwardPasses * row.gradientSpeedupAtOnePass).toBeCloseTo(row.partitions / 2, 6);
  });
});
