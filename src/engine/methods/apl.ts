/**
 * APL: Activated Parameter Locating via causal intervention (arXiv 2408.09485), as defined in
 * APL.md. Each fine-tune's task vector is dropped partition by partition at keep-rates that rise
 * with the partition's importance for its task (measured on probe data, exactly or by the
 * gradient approximation), weighted per partition, and combined by task arithmetic or TIES.
 * The preparation (importance → rates and weights) is in ../apl/prepare.ts; here is the tensor math.
 */
import type * as PrepareModule from '../apl/prepare';
import { ConsensusMethod, subtractInPlace } from '../kernels/combine';
import { isSignedScore } from '../apl/calibrate';
import { aplDropRule } from '../apl/drop-rule';
import { applyDrop, runRecipe, scaleRows, TaskVectorRecipe, UnitOverlap } from '../kernels/recipe';
import { regmeanCombine } from '../kernels/regmean';
import { recipeInput } from './task-vector-merge';
import { CONSENSUS, DENSITY, LAMBDA, MergeMethod, ParameterDef, RecipeInput, TensorMergeInput, WEIGHT } from './types';

const str = (name: string, fallback: string, choices: string[], description: string): ParameterDef => ({ name, type: 'string', default: fallback, choices, description });
const num = (name: string, fallback: number, min: number, description: string): ParameterDef => ({ name, type: 'number', default: fallback, min, description });

/** APL's tensor math as a recipe: per-row drops at the calibrated keep-rates, per-row weights, combination. */
function aplRecipe(input: RecipeInput): TaskVectorRecipe {
  const global = input.globalParameters;
  if (!input.rowParameters) throw new Error(`tensor "${input.name}": apl merges trunk tensors only, after its preparation step`);
  return {
    models: input.rowParameters.map((rows, t) => ({
      weight: input.modelParameters[t].weight as number,
      drop: aplDropRule(global.drop as string, input.seed, t, input.name, rows, global.unit_overlap as UnitOverlap),
      rowWeights: rows.weight.every((w) => w === 1) ? undefined : rows.weight,
    })),
    consensus: global.combine === 'ties' ? (global.consensus_method as ConsensusMethod) : undefined,
    normalize: global.normalize as boolean,
    lambda: global.lambda as number,
  };
}

/**
 * combine: regmean — each fine-tune with its task vector dropped and weighted per row as APL
 * decides (θ0 + drop(δ)), then the linear maps solved for by RegMean from each fine-tune's probe
 * inputs, and every other tensor averaged: APL locates what to keep, RegMean resolves the conflicts
 * between what is kept.
 */
function droppedRegmean(input: TensorMergeInput): Float32Array {
  const recipe = aplRecipe(recipeInput(input));
  const base = input.base!;
  const dropped = input.models.map((theta, t) => {
    const delta = Float32Array.from(theta);
    subtractInPlace(delta, base);
    applyDrop(delta, recipe.models[t].drop, input.shape);
    if (recipe.models[t].rowWeights) scaleRows(delta, recipe.models[t].rowWeights!);
    for (let j = 0; j < delta.length; j++) delta[j] += base[j];
    return delta;
  });
  const weights = input.modelParameters.map((p) => p.weight as number);
  const grams = input.rowParameters!.map((p) => p.gram);
  return regmeanCombine(input.name, input.shape, dropped, weights, grams, input.globalParameters.regmean_alpha as number, input.models[0], input.halfOutput);
}

export const apl: MergeMethod = {
  name: 'apl',
  prettyName: 'APL (Activated Parameter Locating)',
  reference: 'https://arxiv.org/abs/2408.09485',
  needsBase: true,
  stochastic: true,
  globalParameters: [
    str('level', 'row', ['model', 'layer', 'row', 'unit'], "partition level: whole task vector, tensor, output unit (a weight's row and its bias), or hidden unit (its incoming rows and bias and the column of the weight that reads it; drop: stochastic, no competition)"),
    // mean is the default because it won on validation (bench/apl-units.ts): level with geometric at τ1 = 1, 2–4 points ahead at τ1 = 0.
    str('unit_overlap', 'mean', ['mean', 'geometric'], "level: unit: an entry of a middle weight is in its row's unit and its column's; it is kept at (r + c) / 2 of their keep-rates (mean: each layer keeps the target density in expectation) or √(r·c) (geometric: a unit dropped whole takes its column with it, and a layer of units kept or dropped whole keeps about density² of its entries)"),
    str('estimator', 'gradient', ['gradient', 'exact', 'fisher'], 'importance by gradient approximation, exact causal intervention, or the second-order estimate ½ Σ F·δ² (F: the Fisher diagonal on the probe data)'),
    str('metric', 'loss', ['loss', 'kl'], 'exact intervention: loss increase or KL divergence'),
    str('gradient_form', 'absolute', ['absolute', 'signed'], 'gradient approximation: |g·δ| or −g·δ'),
    str('gradient_at', 'finetune', ['finetune', 'base'], 'where the gradient is taken'),
    num('keep_temperature', 1, 0, 'τ1: 0 keeps whole partitions by rank; large values approach a uniform rate (DARE)'),
    { name: 'competition', type: 'boolean', default: false, description: 'weight tasks per partition by softmax of importance (τ2)' },
    num('weight_temperature', 1, 1e-6, 'τ2 of the task competition'),
    str('drop', 'stochastic', ['stochastic', 'deterministic'], 'Bernoulli drop with rescale, or keep the largest |δ| in each partition'),
    str('combine', 'task_arithmetic', ['task_arithmetic', 'ties', 'regmean'], 'how dropped, weighted task vectors are combined; regmean: the dropped fine-tunes solved for by RegMean on their probe inputs (lambda unused)'),
    str('locate', 'finetune', ['finetune', 'merged'], "where importance is measured: on each fine-tune alone (APL's definition), or on the merged model — task t's contribution at partition k taken out, the tasks' mean probe loss measured (needs per-model probe; combines by task arithmetic)"),
    str('keep_rule', 'rates', ['rates', 'helpful', 'owner'], "locate: merged: rates — keep-rates rise with importance (density, τ1); helpful — keep each contribution the merged model is worse without, drop the rest; owner — each partition kept only for the task whose contribution matters most to the merged model (when it helps)"),
    num('locate_iterations', 1, 1, 'locate: merged: passes; the first measures the merge without drops, each further one the merge with the drops the pass before chose'),
    str('coefficients', 'lambda', ['lambda', 'fitted'], "lambda: every task vector scaled by lambda; fitted: one coefficient per fine-tune and trunk tensor, started at lambda and fitted by Adam to the fine-tunes' mean probe loss of the merged model (AdaMerging-style, with labels; kept only if it lowers that loss)"),
    str('fit_granularity', 'tensor', ['tensor', 'row'], 'coefficients: fitted: one coefficient per fine-tune and tensor, or per fine-tune and row (output unit)'),
    num('fit_steps', 100, 1, 'coefficients: fitted: Adam steps, each over every probe split'),
    num('fit_learning_rate', 0.01, 0, "coefficients: fitted: Adam's learning rate"),
    { name: 'regmean_alpha', type: 'number', default: 0.9, min: 0, max: 1, description: "combine: regmean: scale of the Gram matrices' off-diagonal" },
    { ...CONSENSUS },
    { name: 'normalize', type: 'boolean', default: false, description: 'divide by the weights that took part' },
    LAMBDA,
  ],
  modelParameters: [
    { ...WEIGHT, default: 1 },
    { ...DENSITY, default: 0.5 },
    { name: 'probe', type: 'string', default: '', path: true, description: 'task data (safetensors) whose probe split measures importance' },
    { name: 'importance', type: 'string', default: '', path: true, description: 'a saved importance analysis to use instead of probe data' },
    { name: 'task', type: 'string', default: '', description: "the model's head to score (default: its only one)" },
  ],
  checkParameters(global, perModel) {
    if (!perModel.probe && !perModel.importance) return 'apl needs per-model "probe" (task data) or "importance" (a saved analysis)';
    if (global.coefficients === 'fitted' && !perModel.probe) return 'apl with coefficients: fitted needs per-model "probe": the coefficients are fitted on the probe data';
    if (global.coefficients === 'fitted' && global.combine !== 'task_arithmetic') return `apl with coefficients: fitted combines by task arithmetic (combine: ${String(global.combine)} has no per-task coefficients to fit)`;
    if (global.coefficients === 'fitted' && global.normalize) return 'apl with coefficients: fitted: normalize must be false (the fitted coefficients already set each task vector\'s scale)';
    if (global.coefficients === 'fitted' && !Number.isInteger(global.fit_steps)) return `fit_steps: must be a whole number of steps, got ${String(global.fit_steps)}`;
    if (global.locate === 'merged') {
      if (!perModel.probe) return 'apl with locate: merged needs per-model "probe": importance is measured on the merged model with every task\'s probe data';
      if (global.estimator === 'fisher') return 'apl with locate: merged measures importance by estimator exact or gradient (the Fisher estimate is of a fine-tune at its own optimum, not of a merged model)';
      if (global.combine !== 'task_arithmetic') return `apl with locate: merged combines by task arithmetic (the merged model it measures is θ0 + λ Σ task vectors; combine: ${String(global.combine)} would merge another)`;
      if (global.normalize) return 'apl with locate: merged: normalize must be false (the merged model it measures is θ0 + λ Σ task vectors)';
      if (global.keep_rule !== 'rates' && !isSignedScore(global.estimator as string, global.metric as string, global.gradient_form as string)) return `keep_rule: ${String(global.keep_rule)} keeps the contributions that help the merged model, which needs a signed score (estimator exact with metric loss, or gradient_form: signed)`;
      if (!Number.isInteger(global.locate_iterations)) return `locate_iterations: must be a whole number of passes, got ${String(global.locate_iterations)}`;
    }
    if (global.level === 'unit' && global.drop !== 'stochastic') return 'level: unit needs drop: stochastic (a hidden unit shares the entries of a middle weight with the unit before it, so "the largest |δ| in each partition" is not one set)';
    if (global.level === 'unit' && global.competition) return 'level: unit has no competition: an entry in two units would have two weights per task';
    if (global.keep_rule !== 'rates' && global.locate !== 'merged') return `keep_rule: ${String(global.keep_rule)} reads importance measured on the merged model: set locate: merged`;
    if (global.combine === 'regmean' && !perModel.probe) return 'apl with combine: regmean needs per-model "probe": the inputs it solves for come from the probe data';
    return undefined;
  },
  // Loaded on first use: merge worker threads import every method, and must not pay for
  // loading TensorFlow.js, which only the preparation needs.
  prepare: (context) => (require('../apl/prepare') as typeof PrepareModule).prepareApl(context),
  // RegMean's solve is not a task-vector recipe: those merges run on the CPU.
  recipe: (input) => (input.globalParameters.combine === 'regmean' ? undefined : aplRecipe(input)),
  mergeTensor(input: TensorMergeInput): Float32Array {
    if (input.globalParameters.combine === 'regmean') return droppedRegmean(input);
    return runRecipe(aplRecipe(recipeInput(input)), input.base!, input.models, input.shape, input.halfOutput);
  },
};
