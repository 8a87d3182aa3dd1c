/**
 * Generalized task arithmetic, as in mergekit: task vectors (fine-tune − base) are sparsified,
 * weighted, optionally sign-elected, summed, optionally normalised, scaled by λ and added back to
 * the base. Task arithmetic, TIES, DARE, magnitude pruning, Breadcrumbs and DELLA are all this one
 * procedure with different settings; each method file declares which.
 */
import { ConsensusMethod } from '../kernels/combine';
import { dropKey } from '../kernels/random';
import { bernoulliRule, DropRule, magnitudeRule, runRecipe, TaskVectorRecipe } from '../kernels/recipe';
import { SparsificationMethod } from '../kernels/sparsify';
import { CONSENSUS, DENSITY, INT8_MASK, LAMBDA, MergeMethod, NORMALIZE, ParameterDef, ParameterValue, RecipeInput, RESCALE, TensorMergeInput, WEIGHT } from './types';

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

/** A tensor merge input without its values: what a recipe is built from. */
export function recipeInput(input: TensorMergeInput): RecipeInput {
  return { ...input, elements: input.models[0].length };
}

/** How one model's task vector is sparsified, as a drop rule. */
function dropRule(sparsification: SparsificationMethod | undefined, input: RecipeInput, p: Readonly<Record<string, ParameterValue>>, t: number): DropRule {
  const density = (p.density as number | undefined) ?? 1;
  if (!sparsification || density >= 1) return { kind: 'keep' };
  const rescale = input.globalParameters.rescale as boolean;
  switch (sparsification) {
    case 'magnitude':
      return magnitudeRule(density, input.elements);
    case 'random':
      return bernoulliRule(density, dropKey(input.seed, t, input.name), rescale);
    case 'magnitude_outliers':
      return { kind: 'breadcrumbs', density, gamma: p.gamma as number };
    case 'della_magprune':
      return { kind: 'della', density, epsilon: p.epsilon as number, key: dropKey(input.seed, t, input.name), rescale };
  }
}

export function taskVectorMethod(settings: TaskVectorSettings): MergeMethod {
  const { sparsification, consensus } = settings;
  const globalParameters: ParameterDef[] = [NORMALIZE(settings.defaultNormalize), LAMBDA, INT8_MASK];
  if (sparsification === 'random' || sparsification === 'della_magprune') globalParameters.push(RESCALE(settings.defaultRescale));
  if (consensus) globalParameters.push(CONSENSUS);
  const modelParameters: ParameterDef[] = [WEIGHT];
  if (sparsification) modelParameters.push(DENSITY);
  if (sparsification === 'magnitude_outliers') modelParameters.push(GAMMA);
  if (sparsification === 'della_magprune') modelParameters.push(EPSILON);

  const recipe = (input: RecipeInput): TaskVectorRecipe => {
    const global = input.globalParameters;
    return {
      models: input.modelParameters.map((p, t) => ({ weight: p.weight as number, drop: dropRule(sparsification, input, p, t) })),
      consensus: consensus ? (global.consensus_method as ConsensusMethod) : undefined,
      normalize: global.normalize as boolean,
      lambda: global.lambda as number,
    };
  };

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
    recipe,
    mergeTensor(input: TensorMergeInput): Float32Array {
      return runRecipe(recipe(recipeInput(input)), input.base!, input.models, input.shape, input.halfOutput);
    },
  };
}
