/**
 * APL's preparation before the tensor-by-tensor merge: for each fine-tune, its importance per
 * partition (from a saved analysis, or computed now on its probe data), then keep-rates per
 * partition (τ1, target density) and merge weights (τ2, tasks competing per partition), spread
 * over the rows of every trunk tensor.
 */
import { getSplit, loadTaskData } from '../data/task-data';
import { Model, loadModel } from '../families/model';
import { MergeInputError } from '../errors';
import { ProgressCallback } from '../progress';
import { PrepareContext, Prepared } from '../methods/types';
import { useBackend } from '../tensors/backend';
import { loadImportance, ScoreName } from './artifact';
import { keepRates, mergeWeights } from './calibrate';
import { exactImportance, fisherImportance, gradientImportance } from './importance';
import { buildPartitions, PartitionLevel, PartitionScheme } from './partitions';
import { linearInputGrams } from '../data-aware/input-grams';
import { ProbedModel, probedModels, singleTask } from '../data-aware/probe-inputs';
import { subtractInPlace } from '../kernels/combine';
import { applyDrop, scaleRows, UnitOverlap } from '../kernels/recipe';
import { aplDropRule } from './drop-rule';
import { fitCoefficients } from './fit-coefficients';
import { mergedImportance } from './merged-importance';

export function trunkShapesOf(model: Model): Map<string, number[]> {
  return new Map(model.family.trunkShapes(model.config).map((s) => [s.name, s.shape]));
}

/** The model's partitions at `level` (at unit level, over the hidden units its family declares). */
export function partitionsOf(level: PartitionLevel, model: Model): PartitionScheme {
  return buildPartitions(level, trunkShapesOf(model), model.family.hiddenUnits?.(model.config));
}

export interface ScoreChoice {
  estimator: 'exact' | 'gradient' | 'fisher';
  metric: 'loss' | 'kl';
  gradientForm: 'absolute' | 'signed';
  gradientAt: 'finetune' | 'base';
}

export function scoreName(choice: ScoreChoice): ScoreName {
  if (choice.estimator === 'exact') return choice.metric === 'kl' ? 'kl' : 'loss_increase';
  if (choice.estimator === 'fisher') return 'fisher';
  return choice.gradientForm === 'signed' ? 'gradient_signed' : 'gradient_absolute';
}

/** Importance of every partition of one fine-tune, by the chosen estimator. */
export async function computeScore(
  base: Model,
  finetune: Model,
  task: string,
  probePath: string,
  scheme: PartitionScheme,
  choice: ScoreChoice,
  signal?: AbortSignal,
  onProgress?: ProgressCallback,
): Promise<{ score: Float64Array; seconds: number; wgslKernels?: number | boolean }> {
  const probe = getSplit(loadTaskData(probePath), 'probe');
  const inputs = { base, finetune, task, probe, scheme };
  if (choice.estimator === 'exact') {
    const exact = await exactImportance(inputs, { signal, onProgress });
    return { score: choice.metric === 'kl' ? exact.kl : exact.lossIncrease, seconds: exact.seconds, ...(exact.fusedPartitions > 0 ? { wgslKernels: exact.fusedPartitions } : {}) };
  }
  if (choice.estimator === 'fisher') {
    const fisher = await fisherImportance(inputs, signal);
    return { score: fisher.score, seconds: fisher.seconds };
  }
  const gradient = await gradientImportance(inputs, choice.gradientAt, signal);
  return { score: choice.gradientForm === 'signed' ? gradient.signed : gradient.absolute, seconds: gradient.seconds, ...(gradient.fused ? { wgslKernels: true } : {}) };
}

/** Per fine-tune, the Gram matrix of each linear map's inputs on its probe data (data-aware/input-grams.ts). */
async function regmeanInputs(context: PrepareContext, finetunes: readonly Model[]): Promise<Array<Map<string, Float32Array>>> {
  const grams: Array<Map<string, Float32Array>> = [];
  for (const probed of probedModels(context, 'apl with combine: regmean', finetunes)) {
    grams.push((await linearInputGrams(probed, context.signal)).byWeight);
  }
  return grams;
}

/**
 * Fine-tune t's task vector in one trunk tensor exactly as the merge takes it: θt − θ0, dropped by
 * the seeded rule at its keep-rates, weighted per row and by its model weight (λ not included).
 * The preparation steps that must see the merge's own task vectors (the fit, locating on the merged
 * model) read them through this.
 */
function mergedTaskVector(context: PrepareContext, base: Model, finetunes: readonly Model[], rowParameters: Map<string, Array<Record<string, Float32Array>>>) {
  return (t: number, name: string, shape: readonly number[]): Float32Array => {
    const delta = Float32Array.from(finetunes[t].params.get(name)!);
    subtractInPlace(delta, base.params.get(name)!);
    const rows = rowParameters.get(name)![t];
    applyDrop(delta, aplDropRule(context.global.drop as string, context.seed, t, name, rows, context.global.unit_overlap as UnitOverlap), shape);
    scaleRows(delta, rows.weight);
    const weight = context.perModel[t].weight as number;
    for (let j = 0; j < delta.length; j++) delta[j] *= weight;
    return delta;
  };
}

/**
 * Per trunk tensor, per fine-tune: its rows' keep-rates and weights (NaN and 1 where its rows are
 * not partitions), its columns' keep-rates where it reads hidden units, and RegMean's input Gram
 * matrix, where there is one.
 */
function rowParametersOf(scheme: PartitionScheme, rates: readonly Float64Array[], weights: readonly Float64Array[], grams?: Array<Map<string, Float32Array>>): Map<string, Array<Record<string, Float32Array>>> {
  const rowParameters = new Map<string, Array<Record<string, Float32Array>>>();
  for (const [name, rows] of scheme.rows) {
    const columns = scheme.columns.get(name);
    rowParameters.set(
      name,
      rates.map((_, t) => ({
        keep_rate: Float32Array.from(rows, (k) => (k >= 0 ? rates[t][k] : NaN)),
        weight: Float32Array.from(rows, (k) => (k >= 0 ? weights[t][k] : 1)),
        ...(columns ? { column_keep_rate: Float32Array.from(columns, (k) => rates[t][k]) } : {}),
        ...(grams?.[t].has(name) ? { gram: grams[t].get(name)! } : {}),
      })),
    );
  }
  return rowParameters;
}

/**
 * Each fine-tune's keep-rates (by `keep_rule`) and per-partition weights (the task competition, τ2,
 * or 1) from its importance scores.
 */
function calibrate(context: PrepareContext, scheme: PartitionScheme, scores: readonly Float64Array[]): { rates: Float64Array[]; weights: Float64Array[] } {
  const { global, perModel } = context;
  return {
    rates: keepRatesByRule(global.keep_rule as string, scores, (score, t) => keepRates(score, scheme.sizes, perModel[t].density as number, global.keep_temperature as number)),
    weights: global.competition ? mergeWeights([...scores], scheme.sizes, global.weight_temperature as number) : scores.map(() => new Float64Array(scheme.count).fill(1)),
  };
}

/**
 * Keep-rates by `keep_rule` (the rules beyond `rates` read importance measured on the merged model):
 *  - rates: APL's rule (keep-rates rise with importance at the target density, τ1);
 *  - helpful: every contribution the merged model is worse without is kept whole, every other dropped;
 *  - owner: each partition kept whole for the one task whose contribution the merged model loses
 *    most without (when it helps at all), and dropped for every other: one owner per contested unit.
 */
export function keepRatesByRule(rule: string, scores: readonly Float64Array[], byRates: (score: Float64Array, t: number) => Float64Array): Float64Array[] {
  if (rule === 'rates') return scores.map(byRates);
  if (rule === 'helpful') return scores.map((score) => score.map((v) => (v > 0 ? 1 : 0)));
  const owners = scores.length === 0 ? new Int32Array(0) : Int32Array.from(scores[0], (_, k) => scores.reduce((best, score, t) => (score[k] > scores[best][k] ? t : best), 0));
  return scores.map((score, t) => score.map((v, k) => (owners[k] === t && v > 0 ? 1 : 0)));
}

/**
 * locate: merged — importance measured on the merged model instead of each fine-tune alone
 * (merged-importance.ts): the first pass on the merge without drops (task arithmetic at λ), each
 * further one on the merge with the drops the pass before chose. Returns the last pass's keep-rates
 * and weights, and what each pass found.
 */
async function locateOnMerged(context: PrepareContext, base: Model, members: readonly ProbedModel[], scheme: PartitionScheme, choice: ScoreChoice) {
  const { global } = context;
  const lambda = global.lambda as number;
  const finetunes = members.map((m) => m.model);
  const passes = global.locate_iterations as number;
  let rates: Float64Array[] = members.map(() => new Float64Array(scheme.count).fill(1));
  let weights: Float64Array[] = members.map(() => new Float64Array(scheme.count).fill(1));
  const iterations: Array<Record<string, unknown>> = [];
  for (let pass = 0; pass < passes; pass++) {
    const taskVector = mergedTaskVector(context, base, finetunes, rowParametersOf(scheme, rates, weights));
    const phase = `locate on the merged model ${pass + 1}/${passes}`;
    const located = await mergedImportance(base, members, {
      scheme,
      contribution: (t, name, shape) => taskVector(t, name, shape).map((v) => v * lambda),
      estimator: choice.estimator as 'exact' | 'gradient',
      metric: choice.metric,
      gradientForm: choice.gradientForm,
      signal: context.signal,
      onProgress: context.onProgress && ((event) => context.onProgress!({ ...event, phase })),
    });
    ({ rates, weights } = calibrate(context, scheme, located.scores));
    iterations.push({ harmfulPartitions: located.harmful, ...(located.mergedProbeLoss !== undefined ? { mergedProbeLoss: +located.mergedProbeLoss.toPrecision(6) } : {}), seconds: +located.seconds.toPrecision(4) });
  }
  return { rates, weights, report: { on: 'merged', iterations } };
}

/**
 * coefficients: fitted — one coefficient per fine-tune and trunk tensor (or row) in place of λ,
 * fitted on the probe data (fit-coefficients.ts) and folded into the per-row weights, so that the
 * merge's λ · weight reproduces it. Returns what the merge's result records.
 */
async function fitMergeCoefficients(context: PrepareContext, base: Model, members: readonly ProbedModel[], rowParameters: Map<string, Array<Record<string, Float32Array>>>): Promise<Record<string, unknown>> {
  const { global } = context;
  const lambda = global.lambda as number;
  if (!(lambda > 0)) throw new MergeInputError(`lambda: coefficients: fitted starts every coefficient at lambda, which must be above 0 (got ${lambda})`);
  const trunk = base.family.trunkShapes(base.config);
  const taskVector = mergedTaskVector(context, base, members.map((m) => m.model), rowParameters);
  const phase = 'fit coefficients';
  const fitted = await fitCoefficients(base, members, {
    trunk,
    taskVector,
    lambda,
    granularity: global.fit_granularity as 'tensor' | 'row',
    steps: global.fit_steps as number,
    learningRate: global.fit_learning_rate as number,
    signal: context.signal,
    onProgress: context.onProgress && ((event) => context.onProgress!({ ...event, phase })),
  });
  // The merge multiplies by λ: the row weights carry coefficient / λ.
  trunk.forEach(({ name }, i) => {
    rowParameters.get(name)!.forEach((rows, t) => {
      const c = fitted.coefficients[t][i];
      if (c.length !== 1 && c.length !== rows.weight.length) throw new Error(`tensor "${name}": ${c.length} fitted row coefficients for ${rows.weight.length} rows`);
      rows.weight = Float32Array.from(rows.weight, (w, r) => (w * c[c.length === 1 ? 0 : r]) / lambda);
    });
  });
  const round = (x: number) => +x.toPrecision(6);
  const summary = (values: Float32Array) => (values.length === 1 ? round(values[0]) : { mean: round(values.reduce((a, b) => a + b, 0) / values.length), min: round(Math.min(...values)), max: round(Math.max(...values)) });
  return {
    steps: global.fit_steps,
    learningRate: global.fit_learning_rate,
    probeLossAtLambda: round(fitted.lossAtLambda),
    probeLossFitted: round(fitted.lossFitted),
    used: fitted.kept,
    seconds: round(fitted.seconds),
    granularity: global.fit_granularity,
    coefficients: Object.fromEntries(trunk.map(({ name }, i) => [name, fitted.coefficients.map((c) => summary(c[i]))])),
  };
}

export async function prepareApl(context: PrepareContext): Promise<Prepared> {
  // The backend is chosen when probe data must be scored; saved analyses need no forward passes.
  let backend: string | undefined;
  const { global, perModel } = context;
  if (!context.baseModel) throw new MergeInputError('apl needs base_model');
  const base = loadModel(context.baseModel);
  const level = global.level as PartitionLevel;
  const choice: ScoreChoice = {
    estimator: global.estimator as ScoreChoice['estimator'],
    metric: global.metric as ScoreChoice['metric'],
    gradientForm: global.gradient_form as ScoreChoice['gradientForm'],
    gradientAt: global.gradient_at as ScoreChoice['gradientAt'],
  };
  const scheme = partitionsOf(level, base);
  const scores: Float64Array[] = [];
  const sources: Array<Record<string, unknown>> = [];
  const onMerged = global.locate === 'merged';
  // RegMean's solve, the fitted coefficients and locating on the merged model read every fine-tune again after importance: kept, not re-read.
  const keepFinetunes = global.combine === 'regmean' || global.coefficients === 'fitted' || onMerged;
  const finetunes: Model[] = [];
  for (let t = 0; t < context.models.length; t++) {
    const finetune = loadModel(context.models[t]);
    if (keepFinetunes) finetunes.push(finetune);
    const params = perModel[t];
    const task = singleTask(finetune, (params.task as string) || undefined);
    const artifactPath = params.importance as string;
    const probePath = params.probe as string;
    if (onMerged) {
      // Importance comes from the merged model, below: nothing to measure on the fine-tune alone.
      sources.push({ model: context.models[t], task, probe: probePath, score: scoreName(choice) });
    } else if (artifactPath) {
      const artifact = loadImportance(artifactPath);
      const name = scoreName(choice);
      const score = artifact.scores[name];
      if (artifact.level !== level) throw new MergeInputError(`${artifactPath}: importance at ${artifact.level} level, but the merge asks for level ${level}`);
      if (!score) throw new MergeInputError(`${artifactPath}: has no "${name}" score (it has: ${Object.keys(artifact.scores).join(', ')})`);
      if (score.length !== scheme.count) throw new MergeInputError(`${artifactPath}: ${score.length} partitions, but ${context.models[t]} has ${scheme.count} at ${level} level`);
      scores.push(score);
      sources.push({ model: context.models[t], task, importance: artifactPath, score: name });
    } else if (probePath) {
      // One phase per fine-tune, so that progress within a phase only grows.
      const phase = `importance ${t + 1}/${context.models.length}`;
      const onProgress: ProgressCallback | undefined = context.onProgress && ((event) => context.onProgress!({ ...event, phase }));
      backend ??= await useBackend(context.backend);
      // wgslKernels: exact partitions (or the gradient pass) computed by the GPU's own kernels.
      const { score, seconds, wgslKernels } = await computeScore(base, finetune, task, probePath, scheme, choice, context.signal, onProgress);
      scores.push(score);
      sources.push({ model: context.models[t], task, probe: probePath, score: scoreName(choice), seconds, ...(wgslKernels !== undefined ? { wgslKernels } : {}) });
    } else {
      throw new MergeInputError(`models[${t}] (${context.models[t]}): apl needs per-model "probe" (task data) or "importance" (a saved analysis)`);
    }
  }
  // Keep-rates and weights from each fine-tune's own importance, or from the merged model's.
  if (onMerged) backend ??= await useBackend(context.backend);
  // Locating on the merged model and the fit read every fine-tune with its probe split: read once for both.
  const members = onMerged || global.coefficients === 'fitted' ? probedModels(context, onMerged ? 'apl with locate: merged' : 'apl with coefficients: fitted', finetunes) : undefined;
  const located = onMerged ? await locateOnMerged(context, base, members!, scheme, choice) : undefined;
  const { rates, weights } = located ?? calibrate(context, scheme, scores);
  // combine: regmean also needs each fine-tune's linear-map input statistics, from its probe data.
  const grams = global.combine === 'regmean' ? await regmeanInputs(context, finetunes) : undefined;
  const rowParameters = rowParametersOf(scheme, rates, weights, grams);
  let fit: Record<string, unknown> | undefined;
  if (global.coefficients === 'fitted') {
    backend ??= await useBackend(context.backend);
    fit = await fitMergeCoefficients(context, base, members!, rowParameters);
  }
  return { rowParameters, report: { ...(backend ? { backend } : {}), level, partitions: scheme.count, estimator: choice.estimator, sources, ...(located ? { located: located.report } : {}), ...(fit ? { fit } : {}) } };
}
