/**
 * The preparations of the data-aware baselines: per model, statistics of its own probe data,
 * handed to the tensor-by-tensor merge as per-tensor values (methods/types.ts Prepared):
 * Fisher merging gets each model's Fisher diagonal (`fisher`, one value per element), RegMean each
 * linear map's input Gram matrix (`gram`, [in, in]). Nothing here is random.
 */
import { PrepareContext, Prepared } from '../methods/types';
import { ProgressCallback } from '../progress';
import { useBackend } from '../tensors/backend';
import { diagonalFisher, fisherNorm, FisherVariant } from './fisher-information';
import { linearInputGrams } from './input-grams';
import { checkSameTrunk, probedModels } from './probe-inputs';

const phaseOf = (context: PrepareContext, name: string, t: number): ProgressCallback | undefined =>
  context.onProgress && ((event) => context.onProgress!({ ...event, phase: `${name} ${t + 1}/${context.models.length}` }));

export async function prepareFisher(context: PrepareContext): Promise<Prepared> {
  const models = probedModels(context, 'fisher');
  checkSameTrunk(models);
  const backend = await useBackend(context.backend);
  const variant = context.global.fisher as FisherVariant;
  const normalize = context.global.normalize_fisher as boolean;
  const rowParameters: Prepared['rowParameters'] = new Map();
  const sources: Array<Record<string, unknown>> = [];
  for (const [t, probed] of models.entries()) {
    const fisher = await diagonalFisher(probed, variant, { signal: context.signal, onProgress: phaseOf(context, 'fisher', t), phase: 'fisher' });
    const norm = fisherNorm(fisher);
    for (const [name, values] of fisher.byTensor) {
      if (normalize && norm > 0) for (let i = 0; i < values.length; i++) values[i] /= norm;
      let list = rowParameters.get(name);
      if (!list) rowParameters.set(name, (list = []));
      list[t] = { fisher: values };
    }
    sources.push({ model: context.models[t], task: probed.task, probe: probed.probePath, examples: fisher.examples, backwardPasses: fisher.backwardPasses, fisherNorm: norm, seconds: fisher.seconds });
  }
  return { rowParameters, report: { backend, fisher: variant, normalizeFisher: normalize, sources } };
}

export async function prepareRegmean(context: PrepareContext): Promise<Prepared> {
  const models = probedModels(context, 'regmean');
  checkSameTrunk(models);
  const backend = await useBackend(context.backend);
  const rowParameters: Prepared['rowParameters'] = new Map();
  const sources: Array<Record<string, unknown>> = [];
  for (const [t, probed] of models.entries()) {
    const grams = await linearInputGrams(probed, context.signal);
    context.onProgress?.({ phase: `regmean ${t + 1}/${models.length}`, done: 1, total: 1, etaSeconds: 0, message: `input statistics of ${context.models[t]}: ${grams.byWeight.size} linear maps` });
    for (const [name, gram] of grams.byWeight) {
      let list = rowParameters.get(name);
      if (!list) rowParameters.set(name, (list = []));
      list[t] = { gram };
    }
    sources.push({ model: context.models[t], task: probed.task, probe: probed.probePath, examples: grams.examples, linearMaps: grams.byWeight.size, seconds: grams.seconds });
  }
  // A weight every model must have seen: one a model never used (its head's task skips it) cannot be solved for.
  for (const [name, list] of rowParameters) {
    if (list.length !== models.length || list.some((entry) => !entry)) rowParameters.delete(name);
  }
  return { rowParameters, report: { backend, alpha: context.global.alpha, sources } };
}
