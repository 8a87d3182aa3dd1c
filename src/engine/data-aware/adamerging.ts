/**
 * AdaMerging's preparation (Yang et al., arXiv 2310.02575): task arithmetic whose coefficients —
 * one per fine-tune and trunk tensor (layer-wise) or one per fine-tune (task-wise) — are learned by
 * minimising the entropy of the merged model's predictions on each fine-tune's probe inputs,
 * without their labels. Started at `lambda` and fitted by Adam over whole probe splits (nothing is
 * random); the fit is kept only when it lowers the entropy. The merge then adds each task vector
 * times its model weight and its coefficient (the per-row weights handed to the tensor merge).
 */
import { subtractInPlace } from '../kernels/combine';
import { fitCoefficients } from '../apl/fit-coefficients';
import { MergeInputError } from '../errors';
import { loadModel } from '../families/model';
import { PrepareContext, Prepared } from '../methods/types';
import { useBackend } from '../tensors/backend';
import { checkSameTrunk, probedModels } from './probe-inputs';

export async function prepareAdaMerging(context: PrepareContext): Promise<Prepared> {
  if (!context.baseModel) throw new MergeInputError('adamerging needs base_model');
  const members = probedModels(context, 'adamerging');
  checkSameTrunk(members);
  const base = loadModel(context.baseModel);
  const backend = await useBackend(context.backend);
  const trunk = base.family.trunkShapes(base.config);
  const granularity = context.global.granularity === 'task' ? 'model' : 'tensor';
  const lambda = context.global.lambda as number;
  const fitted = await fitCoefficients(base, members, {
    trunk,
    taskVector: (t, name) => {
      // The coefficients are fitted for the task vectors as the merge adds them: times each model's weight.
      const delta = Float32Array.from(members[t].model.params.get(name)!);
      subtractInPlace(delta, base.params.get(name)!);
      const weight = context.perModel[t].weight as number;
      if (weight !== 1) for (let j = 0; j < delta.length; j++) delta[j] *= weight;
      return delta;
    },
    lambda,
    granularity,
    objective: 'entropy',
    steps: context.global.steps as number,
    learningRate: context.global.learning_rate as number,
    signal: context.signal,
    onProgress: context.onProgress && ((event) => context.onProgress!({ ...event, phase: 'fit coefficients' })),
  });
  const rowParameters: Prepared['rowParameters'] = new Map();
  trunk.forEach(({ name, shape }, i) => {
    rowParameters.set(
      name,
      members.map((_, t) => ({ weight: new Float32Array(shape[0] ?? 1).fill(fitted.coefficients[t][i][0]) })),
    );
  });
  const round = (x: number) => +x.toPrecision(6);
  return {
    rowParameters,
    report: {
      backend,
      objective: 'entropy',
      granularity: context.global.granularity,
      steps: context.global.steps,
      learningRate: context.global.learning_rate,
      entropyAtLambda: round(fitted.lossAtLambda),
      entropyFitted: round(fitted.lossFitted),
      used: fitted.kept,
      seconds: round(fitted.seconds),
      coefficients: Object.fromEntries(members.map((m, t) => [m.model.path, granularity === 'model' ? round(fitted.coefficients[t][0][0]) : Object.fromEntries(trunk.map(({ name }, i) => [name, round(fitted.coefficients[t][i][0])]))])),
      sources: members.map((m) => ({ model: m.model.path, task: m.task, probe: m.probePath, examples: m.probe.count })),
    },
  };
}
