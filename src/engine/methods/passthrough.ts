/** Passthrough: one model's tensors, copied (times `scale`), as mergekit's `passthrough`. */
import { TaskVectorRecipe } from '../kernels/recipe';
import { MergeMethod, RecipeInput } from './types';

export const passthrough: MergeMethod = {
  name: 'passthrough',
  prettyName: 'Passthrough',
  reference: 'https://github.com/arcee-ai/mergekit',
  needsBase: false,
  stochastic: false,
  globalParameters: [],
  modelParameters: [{ name: 'scale', type: 'number', default: 1, description: 'multiplies the tensor (1: copied as it is)' }],
  checkModels: (count) => (count === 1 ? undefined : `passthrough takes exactly one model; got ${count}`),
  mergeTensor(input) {
    const scale = input.modelParameters[0].scale as number;
    const out = input.models[0];
    if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] *= scale;
    return out;
  },
  // For the GPU: one model times its scale, over a zero base (the same float32 product).
  recipe(input: RecipeInput): TaskVectorRecipe {
    return { models: [{ weight: input.modelParameters[0].scale as number, drop: { kind: 'keep' } }], consensus: undefined, normalize: false, lambda: 1, withoutBase: true };
  },
};
