/**
 * The merging benchmark: does APL beat the baselines on the same inputs?
 *
 * Rows: each fine-tune alone (oracle), weight averaging, task arithmetic, TIES, DARE+TA,
 * DARE+TIES, magnitude pruning, APL-exact, APL-gradient, and the data-aware baselines Fisher
 * merging and RegMean (which read the same probe splits as APL), then APL with RegMean's solve, APL
 * located on the merged model, and APL with coefficients fitted on the probe data. Every method gets the same search budget
 * (at most BUDGET configurations), chosen on the validation split only by mean accuracy; the
 * chosen configuration is then scored on the in-domain and out-of-domain test splits. Repeated
 * for each seed (seeds change the random drops); rows report the mean and spread over seeds.
 * Also: per partition level, Spearman ρ between gradient-approximated and exact importance and
 * the wall-time ratio exact / gradient.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { saveImportance } from '../apl/artifact';
import { exactImportance, fisherImportance, gradientImportance } from '../apl/importance';
import { PARTITION_LEVELS, PartitionLevel } from '../apl/partitions';
import { partitionsOf } from '../apl/prepare';
import { getSplit, loadTaskData, TaskData } from '../data/task-data';
import { throwIfAborted } from '../errors';
import { loadModel, Model } from '../families/model';
import { parseMergeConfig } from '../merge/config';
import { planMerge } from '../merge/plan';
import { runMerge } from '../merge/run';
import { ProgressCallback, ProgressTracker } from '../progress';
import { useBackend } from '../tensors/backend';
import { evaluate } from '../train/evaluate';
import { ZooManifest } from '../zoo/vision';

export const BUDGET = 6;

export interface MethodSpec {
  row: string;
  method: string;
  /** Candidate configurations: global parameters (YAML text fragments) per candidate. */
  candidates: Array<Record<string, number | string | boolean>>;
  /** Per-model parameters added for every model. */
  perModel?: (task: string) => Record<string, string>;
  seeded: boolean;
  /** Reads the row-level importance the benchmark measures and saves first (a merge's `importance:`). */
  readsSavedImportance?: boolean;
  /** Averages the fine-tunes themselves: no base_model, a weight per model (linear, Fisher, RegMean). */
  withoutBase?: boolean;
}

const grid = (densities: number[], lambdas: number[], extra: Record<string, number | string | boolean> = {}) =>
  densities.flatMap((density) => lambdas.map((lambda) => ({ density, lambda, ...extra })));

/**
 * Sum-combining methods add T task vectors: their useful λ is near 1/T; TIES averages (λ near 1).
 * The data-aware rows (APL, Fisher, RegMean) read each fine-tune's probe split (`dataFile`) or the
 * importance measured on it; the others see no data.
 */
export function methodSpecs(tasks: number, importanceDir: string, dataFile: (task: string) => string, options: { fisher?: boolean } = {}): MethodSpec[] {
  const fisher = options.fisher ?? true;
  const sum = [0.6, 1.0, 1.4].map((x) => +(x / tasks).toFixed(3));
  const mean = [0.6, 0.8, 1.0];
  const densities = [0.2, 0.5];
  const apl = (estimator: 'exact' | 'gradient' | 'fisher'): MethodSpec => ({
    row: `APL-${estimator}`,
    method: 'apl',
    candidates: grid(densities, sum, { estimator, keep_temperature: 1, level: 'row' }),
    perModel: (task) => ({ importance: join(importanceDir, `${task}.safetensors`) }),
    seeded: true,
    readsSavedImportance: true,
  });
  const probe = (task: string) => ({ probe: dataFile(task) });
  return [
    { row: 'weight averaging', method: 'linear', candidates: [{}], seeded: false, withoutBase: true },
    { row: 'task arithmetic', method: 'task_arithmetic', candidates: [0.4, 0.7, 1.0, 1.3, 1.6, 2.0].map((x) => ({ lambda: +(x / tasks).toFixed(3) })), seeded: false },
    { row: 'TIES', method: 'ties', candidates: grid(densities, mean), seeded: false },
    { row: 'DARE+TA', method: 'dare_linear', candidates: grid(densities, sum), seeded: true },
    { row: 'DARE+TIES', method: 'dare_ties', candidates: grid(densities, mean, { normalize: true }), seeded: true },
    { row: 'magnitude', method: 'magnitude', candidates: grid(densities, sum), seeded: false },
    apl('exact'),
    apl('gradient'),
    // The Fisher rows need the Fisher information, which language models do not have here (fisher-information.ts).
    ...(fisher
      ? [
          apl('fisher'),
          {
            row: 'Fisher merging',
            method: 'fisher',
            candidates: (['expected', 'empirical'] as const).flatMap((variant) => [true, false].map((normalize_fisher) => ({ fisher: variant, normalize_fisher }))),
            perModel: probe,
            seeded: false,
            withoutBase: true,
          },
        ]
      : []),
    { row: 'RegMean', method: 'regmean', candidates: [0.1, 0.3, 0.5, 0.7, 0.9, 1].map((alpha) => ({ alpha })), perModel: probe, seeded: false, withoutBase: true },
    {
      // Layer-wise or task-wise coefficients from the entropy of the predictions on the probe inputs (no labels), started at each λ of the sum grid.
      row: 'AdaMerging (entropy)',
      method: 'adamerging',
      candidates: (['layer', 'task'] as const).flatMap((granularity) => sum.map((lambda) => ({ granularity, lambda }))),
      perModel: probe,
      seeded: false,
    },
    {
      // APL's drops (row importance, τ1 = 1), then RegMean's solve of what is kept.
      row: 'APL-gradient + RegMean',
      method: 'apl',
      candidates: [0.5, 0.8, 0.95].flatMap((density) => [0.5, 0.9].map((regmean_alpha) => ({ density, regmean_alpha, combine: 'regmean', estimator: 'gradient', keep_temperature: 1, level: 'row' }))),
      perModel: (task) => ({ importance: join(importanceDir, `${task}.safetensors`), ...probe(task) }),
      seeded: true,
      readsSavedImportance: true,
    },
    {
      // Importance measured on the merged model (each fine-tune's contribution at a row taken out,
      // every task's probe loss measured, by the gradient), whole rows kept by it (τ1 = 0): the
      // contributions that cost the other tasks more than they give their own are dropped first.
      row: 'APL-gradient, located on the merged model',
      method: 'apl',
      candidates: grid([0.5, 0.8], sum, { estimator: 'gradient', gradient_form: 'signed', locate: 'merged', keep_temperature: 0, level: 'row' }),
      perModel: probe,
      seeded: true,
    },
    {
      // As the row above, over hidden units (a unit's incoming row and bias with the column that
      // reads it; an entry two units share kept at the mean of their rates).
      row: 'APL-gradient, hidden units, located on the merged model',
      method: 'apl',
      candidates: grid([0.5, 0.8], sum, { estimator: 'gradient', gradient_form: 'signed', locate: 'merged', keep_temperature: 0, level: 'unit', unit_overlap: 'mean' }),
      perModel: probe,
      seeded: true,
    },
    {
      // APL's drops, then one coefficient per fine-tune and tensor (or row) fitted on the probe
      // data in place of λ; density 1 (no drops) is among the candidates, so the row says whether
      // locating adds anything to the fit.
      row: 'APL-gradient, fitted coefficients',
      method: 'apl',
      candidates: [0.5, 0.8, 1].flatMap((density) => ['tensor', 'row'].map((fit_granularity) => ({ density, lambda: sum[1], coefficients: 'fitted', fit_granularity, estimator: 'gradient', keep_temperature: 1, level: 'row' }))),
      perModel: (task) => ({ importance: join(importanceDir, `${task}.safetensors`), ...probe(task) }),
      seeded: true,
      readsSavedImportance: true,
    },
  ];
}

/** The rows named (all when none are), in the benchmark's order; an unknown name is an error listing the rows. */
export function selectRows(specs: MethodSpec[], names: readonly string[] | undefined): MethodSpec[] {
  if (!names) return specs;
  const unknown = names.filter((name) => !specs.some((s) => s.row === name));
  if (unknown.length > 0) throw new Error(`--methods: no row ${unknown.map((n) => JSON.stringify(n)).join(', ')} (rows: ${specs.map((s) => s.row).join('; ')})`);
  return specs.filter((s) => names.includes(s.row));
}

/** The levels a run measures (see `BenchmarkOptions.levels`); refuses levels that leave a row without its input. */
export function fidelityLevels(specs: MethodSpec[], options: Pick<BenchmarkOptions, 'methods' | 'levels'>): readonly PartitionLevel[] {
  const reading = specs.filter((s) => s.readsSavedImportance);
  const chosen = options.levels;
  if (chosen) {
    const unknown = chosen.filter((level) => !PARTITION_LEVELS.includes(level));
    if (unknown.length > 0) throw new Error(`--levels: no level ${unknown.map((l) => JSON.stringify(l)).join(', ')} (levels: ${PARTITION_LEVELS.join(', ')})`);
    if (reading.length > 0 && !chosen.includes('row')) throw new Error(`--levels must include row: the row "${reading[0].row}" reads the row-level importance it measures`);
    return PARTITION_LEVELS.filter((level) => chosen.includes(level));
  }
  // A run of chosen rows measures importance only when one of them reads it.
  return options.methods && reading.length === 0 ? [] : PARTITION_LEVELS;
}

export interface TaskScores {
  validation: number;
  test: number;
  ood: number;
}

export interface BenchmarkRow {
  method: string;
  avgTest: number;
  avgTestSpread: number;
  avgNormalized: number;
  avgOod: number;
  avgOodSpread: number;
  perTask: Record<string, { test: number; ood: number; normalized: number }>;
  chosen: Array<{ seed: number; parameters: Record<string, number | string | boolean>; validation: number }>;
}

export interface FidelityRow {
  level: string;
  partitions: number;
  /** Spearman ρ between exact loss increase and −g·δ, over every (task, partition) pooled. */
  spearman: number;
  /** Mean over tasks of the per-task ρ (where a task has at least 3 partitions). */
  spearmanPerTask: number;
  exactSeconds: number;
  gradientSeconds: number;
  timeRatio: number;
  exactPartitionsPerSecond: number;
  /** Exact intervention's cost per partition, in clean forward passes over the probe set. */
  forwardsPerPartition: number;
  /** The gradient pass's cost per task (forward and backward, every partition at once), in clean forward passes over the probe set. */
  gradientForwardPasses: number;
  /** How many times cheaper the gradient is than exact intervention at one forward pass per partition (the cost batching alone reaches). */
  gradientSpeedupAtOnePass: number;
  /** Partitions scored zero without running them (included above): never read by the probe sets (embedding rows of unused tokens), and left unchanged by the fine-tunes (dead units). */
  unreadPartitions: number;
  unchangedPartitions: number;
  /** Row level: Spearman ρ between ½ Σ F·δ² (the Fisher estimate) and the exact loss increase, and the seconds its Fisher diagonals took. */
  spearmanFisher?: number;
  fisherSeconds?: number;
}

export interface BenchmarkReport {
  suite: string;
  zoo: string;
  backend: string;
  seeds: number[];
  budget: number;
  rows: BenchmarkRow[];
  fidelity: FidelityRow[];
  hyperparameters: Record<string, Array<Record<string, number | string | boolean>>>;
  seconds: number;
}

export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const rank = (x: ArrayLike<number>) => {
    const order = Array.from({ length: x.length }, (_, i) => i).sort((i, j) => x[i] - x[j]);
    const r = new Float64Array(x.length);
    order.forEach((i, k) => (r[i] = k));
    return r;
  };
  if (a.length < 2) return NaN;
  const ra = rank(a);
  const rb = rank(b);
  const m = (a.length - 1) / 2;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (ra[i] - m) * (rb[i] - m);
    da += (ra[i] - m) ** 2;
    db += (rb[i] - m) ** 2;
  }
  return num / Math.sqrt(da * db);
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const spread = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));

function yamlValue(v: number | string | boolean): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

export interface BenchmarkOptions {
  zoo: string;
  seeds?: number[];
  work?: string;
  onProgress?: ProgressCallback;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Only these rows (by name; the oracle always). The importance fidelity is measured, and its
   * analyses saved, only when one of them reads the saved importance.
   */
  methods?: string[];
  /**
   * The partition levels whose fidelity (gradient against exact intervention) is measured. By
   * default every level when every row runs or a chosen row reads the saved importance, none
   * otherwise. A row that reads the saved importance needs the row level.
   */
  levels?: PartitionLevel[];
}

export async function runMergingBenchmark(options: BenchmarkOptions): Promise<BenchmarkReport> {
  const started = Date.now();
  const backend = await useBackend();
  const zoo = resolve(options.zoo);
  const log = options.log ?? (() => undefined);
  const manifest = JSON.parse(readFileSync(join(zoo, 'zoo.json'), 'utf8')) as ZooManifest;
  const seeds = options.seeds ?? [0, 1, 2];
  const work = resolve(options.work ?? join(zoo, 'bench-work'));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'importance'), { recursive: true });
  const tasks = manifest.finetunes.map((f) => f.task);
  const data = new Map<string, TaskData>(manifest.finetunes.map((f) => [f.task, loadTaskData(join(zoo, f.data))]));
  const base = loadModel(join(zoo, manifest.base));
  const finetunes = new Map<string, Model>(manifest.finetunes.map((f) => [f.task, loadModel(join(zoo, f.model))]));
  const withFisher = !base.config.languageModel;

  // Importance of every fine-tune at every level, both estimators: fidelity, and APL's inputs (row level).
  const fidelity: FidelityRow[] = [];
  const specs = selectRows(methodSpecs(tasks.length, join(work, 'importance'), (task) => join(zoo, manifest.finetunes.find((f) => f.task === task)!.data), { fisher: withFisher }), options.methods);
  const levels = fidelityLevels(specs, options);
  for (const level of levels) {
    const rhos: number[] = [];
    const pooledExact: number[] = [];
    const pooledGradient: number[] = [];
    let forwardSeconds = 0;
    let exactSeconds = 0;
    let gradientSeconds = 0;
    let partitions = 0;
    let unreadPartitions = 0;
    let unchangedPartitions = 0;
    // The second-order estimate ½ Σ F·δ², at row level (APL-Fisher's input).
    const pooledFisher: number[] = [];
    let fisherSeconds = 0;
    for (const task of tasks) {
      throwIfAborted(options.signal);
      const finetune = finetunes.get(task)!;
      const scheme = partitionsOf(level, finetune);
      const inputs = { base, finetune, task, probe: getSplit(data.get(task)!, 'probe'), scheme };
      const exact = await exactImportance(inputs, { signal: options.signal });
      const gradient = await gradientImportance(inputs, 'finetune', options.signal);
      exactSeconds += exact.seconds;
      gradientSeconds += gradient.seconds;
      forwardSeconds += exact.forwardSeconds;
      partitions += scheme.count;
      unreadPartitions += exact.unreadPartitions;
      unchangedPartitions += exact.unchangedPartitions;
      pooledExact.push(...exact.lossIncrease);
      pooledGradient.push(...gradient.signed);
      if (scheme.count > 2) rhos.push(spearman(exact.lossIncrease, gradient.signed));
      if (level === 'row') {
        const fisher = withFisher ? await fisherImportance(inputs, options.signal) : undefined;
        if (fisher) {
          fisherSeconds += fisher.seconds;
          pooledFisher.push(...fisher.score);
        }
        saveImportance(join(work, 'importance', task), scheme, {
          task,
          model: finetune.path,
          base: base.path,
          scores: { loss_increase: exact.lossIncrease, kl: exact.kl, gradient_signed: gradient.signed, gradient_absolute: gradient.absolute, ...(fisher ? { fisher: fisher.score } : {}) },
          metadata: { probe_examples: String(inputs.probe.count), backend },
        });
      }
    }
    const row: FidelityRow = {
      level,
      partitions,
      spearman: spearman(pooledExact, pooledGradient),
      spearmanPerTask: rhos.length > 0 ? mean(rhos) : NaN,
      exactSeconds,
      gradientSeconds,
      timeRatio: exactSeconds / Math.max(gradientSeconds, 1e-9),
      exactPartitionsPerSecond: partitions / Math.max(exactSeconds, 1e-9),
      forwardsPerPartition: exactSeconds / partitions / (forwardSeconds / tasks.length),
      gradientForwardPasses: gradientSeconds / forwardSeconds,
      gradientSpeedupAtOnePass: (partitions * (forwardSeconds / tasks.length)) / Math.max(gradientSeconds, 1e-9),
      unreadPartitions,
      unchangedPartitions,
      ...(pooledFisher.length > 0 ? { spearmanFisher: spearman(pooledExact, pooledFisher), fisherSeconds } : {}),
    };
    fidelity.push(row);
    if (row.spearmanFisher !== undefined) log(`fidelity ${level}: ½ Σ F·δ² against the exact loss increase: ρ ${row.spearmanFisher.toFixed(3)} (${fisherSeconds.toFixed(2)} s for the Fisher diagonals)`);
    log(`fidelity ${level}: ${partitions} partitions, ρ ${row.spearman.toFixed(3)}, exact/gradient time ${row.timeRatio.toFixed(1)}×, ${row.exactPartitionsPerSecond.toFixed(0)} partitions/s (${row.forwardsPerPartition.toFixed(2)} forward passes each; not run: ${unreadPartitions} never read, ${unchangedPartitions} unchanged)`);
  }

  const oracle: Record<string, TaskScores> = Object.fromEntries(manifest.finetunes.map((f) => [f.task, f.accuracy]));
  const score = async (model: Model, split: string): Promise<Record<string, number>> => {
    const accuracy: Record<string, number> = {};
    for (const t of tasks) accuracy[t] = (await evaluate(model, t, getSplit(data.get(t)!, split))).accuracy;
    return accuracy;
  };
  const totalMerges = specs.reduce((acc, s) => acc + s.candidates.length * (s.seeded ? seeds.length : 1), 0);
  const progress = new ProgressTracker('bench', totalMerges, options.onProgress);
  let merges = 0;
  const rows: BenchmarkRow[] = [];
  const hyperparameters: BenchmarkReport['hyperparameters'] = {};
  rows.push({
    method: 'oracle (each fine-tune alone)',
    avgTest: mean(tasks.map((t) => oracle[t].test)),
    avgTestSpread: 0,
    avgNormalized: 1,
    avgOod: mean(tasks.map((t) => oracle[t].ood)),
    avgOodSpread: 0,
    perTask: Object.fromEntries(tasks.map((t) => [t, { test: oracle[t].test, ood: oracle[t].ood, normalized: 1 }])),
    chosen: [],
  });
  for (const spec of specs) {
    hyperparameters[spec.row] = spec.candidates;
    const perSeed: Array<{ test: Record<string, number>; ood: Record<string, number>; seed: number; parameters: Record<string, number | string | boolean>; validation: number }> = [];
    let deterministicResult: (typeof perSeed)[number] | undefined;
    for (const seed of seeds) {
      if (!spec.seeded && deterministicResult) {
        perSeed.push({ ...deterministicResult, seed });
        continue;
      }
      let best: { validation: number; parameters: Record<string, number | string | boolean>; out: string } | undefined;
      for (const [c, candidate] of spec.candidates.entries()) {
        throwIfAborted(options.signal);
        const models = tasks
          .map((t) => {
            const own = { ...(spec.withoutBase ? { weight: 1 } : {}), ...(spec.perModel?.(t) ?? {}) };
            const parameters = Object.entries(own).map(([k, v]) => `${k}: ${yamlValue(v)}`).join(', ');
            return `  - model: ${JSON.stringify(join(zoo, manifest.finetunes.find((f) => f.task === t)!.model))}\n    parameters: {${parameters}}`;
          })
          .join('\n');
        const globals = Object.entries({ ...(spec.withoutBase ? {} : { weight: 1 }), ...candidate }).map(([k, v]) => `  ${k}: ${yamlValue(v)}`);
        const text = [
          `merge_method: ${spec.method}`,
          ...(spec.withoutBase ? [] : [`base_model: ${JSON.stringify(join(zoo, manifest.base))}`]),
          'models:',
          models,
          ...(globals.length > 0 ? ['parameters:', ...globals] : []),
          `seed: ${seed}`,
          '',
        ].join('\n');
        const out = join(work, 'merges', `${spec.method}-${seed}-${c}`);
        await runMerge(planMerge(parseMergeConfig(text, `${spec.row} candidate ${c}`, work)), out, { threads: 0, overwrite: true });
        const validation = mean(Object.values(await score(loadModel(out), 'validation')));
        if (!best || validation > best.validation) best = { validation, parameters: candidate, out };
        progress.report(++merges, `${spec.row} seed ${seed} candidate ${c + 1}/${spec.candidates.length}`);
      }
      const chosen = loadModel(best!.out);
      const result = { test: await score(chosen, 'test'), ood: await score(chosen, 'ood'), seed, parameters: best!.parameters, validation: best!.validation };
      perSeed.push(result);
      if (!spec.seeded) deterministicResult = result;
    }
    const avgTests = perSeed.map((r) => mean(tasks.map((t) => r.test[t])));
    const avgOods = perSeed.map((r) => mean(tasks.map((t) => r.ood[t])));
    const perTask = Object.fromEntries(
      tasks.map((t) => {
        const test = mean(perSeed.map((r) => r.test[t]));
        return [t, { test, ood: mean(perSeed.map((r) => r.ood[t])), normalized: test / oracle[t].test }];
      }),
    );
    const row: BenchmarkRow = {
      method: spec.row,
      avgTest: mean(avgTests),
      avgTestSpread: spread(avgTests),
      avgNormalized: mean(tasks.map((t) => perTask[t].normalized)),
      avgOod: mean(avgOods),
      avgOodSpread: spread(avgOods),
      perTask,
      chosen: perSeed.map(({ seed, parameters, validation }) => ({ seed, parameters, validation })),
    };
    rows.push(row);
    log(`${spec.row}: test ${(row.avgTest * 100).toFixed(1)}% ± ${(row.avgTestSpread * 100).toFixed(1)}, normalized ${(row.avgNormalized * 100).toFixed(1)}%, ood ${(row.avgOod * 100).toFixed(1)}%`);
  }
  rmSync(join(work, 'merges'), { recursive: true, force: true });
  const report: BenchmarkReport = { suite: manifest.suite, zoo, backend, seeds, budget: BUDGET, rows, fidelity, hyperparameters, seconds: (Date.now() - started) / 1000 };
  writeFileSync(join(work, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  return report;
}
