/**
 * Generalized task arithmetic, as in mergekit: task vectors (fine-tune − base) are sparsified,
 * weighted, optionally sign-elected, summed, optionally normalised, scaled by λ and added back to
 * the base. Task arithmetic, TIES, DARE, magnitude pruning, Breadcrumbs and DELLA are all this one
 * procedure with different settings; each method file declares which.
 */
import { combineTaskVectors, ConsensusMethod, subtractInPlace } from '../kernels/combine';
import { dropKey } from '../kernels/random';
import { bernoulliDrop, breadcrumbsPrune, dellaPrune, magnitudePrune, SparsificationMethod } from '../kernels/sparsify';
import { CONSENSUS, DENSITY, INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParameterDef, RESCALE, TensorMergeInput, WEIGHT } from './types';

export interface TaskVectorSettings {
  name: string;
  prettyName: string;
  reference: string;
  sparsification: SparsificationMethod | undefined;
  consensus: boolean;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

const GAMMA: ParameterDef = { name: 'gamma', type: 'number', default: 0.01, min: 0, max: 1, description: 'fraction of largest-magnitude outliers removed' };
const EPSILON: ParameterDef = { name: 'epsilon', type: 'number', default: 0.15, min: 0, max: 1, description: 'half-width of the keep-probability range around density' };

export function taskVectorMethod(settings: TaskVectorSettings): MergeMethod {
  const { sparsification, consensus } = settings;
  const globalParameters: ParameterDef[] = [NORMALIZE(settings.defaultNormalize), LAMBDA, INT8_MASK];
  if (sparsification === 'random' || sparsification === 'della_magprune') globalParameters.push(RESCALE(settings.defaultRescale));
  if (consensus) globalParameters.push(CONSENSUS);
  const modelParameters: ParameterDef[] = [WEIGHT];
  if (sparsification) modelParameters.push(DENSITY);
  if (sparsification === 'magnitude_outliers') modelParameters.push(GAMMA);
  if (sparsification === 'della_magprune') modelParameters.push(EPSILON);

  return {
    name: settings.name,
    prettyName: settings.prettyName,
    reference: settings.reference,
    needsBase: true,
    stochastic: sparsification === 'random' || sparsification === 'della_magprune',
    globalParameters,
    modelParameters,
    checkParameters(_global, perModel) {
      if (sparsification !== 'della_magprune') return undefined;
      const density = perModel.density as number;
      const epsilon = perModel.epsilon as number;
      if (density < 1 && (density - epsilon <= 0 || density + epsilon >= 1)) {
        return `density ± epsilon (${density} ± ${epsilon}) must lie inside (0, 1)`;
      }
      return undefined;
    },
    mergeTensor(input: TensorMergeInput): Float32Array {
      const base = input.base!;
      const global = input.globalParameters;
      const deltas = input.models;
      for (let t = 0; t < deltas.length; t++) {
        const delta = deltas[t];
        subtractInPlace(delta, base);
        const p = input.modelParameters[t];
        const density = (p.density as number | undefined) ?? 1;
        switch (sparsification) {
          case undefined:
            break;
          case 'magnitude':
            magnitudePrune(delta, density);
            break;
          case 'random':
            bernoulliDrop(delta, density, dropKey(input.seed, t, input.name), global.rescale as boolean);
            break;
          case 'magnitude_outliers':
            breadcrumbsPrune(delta, density, p.gamma as number);
            break;
          case 'della_magprune':
            dellaPrune(delta, input.shape, density, p.epsilon as number, dropKey(input.seed, t, input.name), global.rescale as boolean);
            break;
        }
      }
      return combineTaskVectors(
        base,
        deltas,
        {
          weights: input.modelParameters.map((p) => p.weight as number),
          consensus: consensus ? (global.consensus_method as ConsensusMethod) : undefined,
          normalize: global.normalize as boolean,
          lambda: global.lambda as number,
        },
        base,
      );
    },
  };
}
