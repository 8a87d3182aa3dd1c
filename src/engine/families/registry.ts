/** The model families the engine knows, by the `apl_family` field of config.json. */
import { mlpFamily } from './mlp';
import { FamilyConfig, ModelFamily } from './types';

export const MODEL_FAMILIES: readonly ModelFamily<FamilyConfig>[] = [mlpFamily as unknown as ModelFamily<FamilyConfig>];

export function getFamily(name: string, file: string): ModelFamily<FamilyConfig> {
  const family = MODEL_FAMILIES.find((f) => f.name === name);
  if (!family) throw new Error(`${file}: apl_family "${name}" is not a model family the engine knows (known: ${MODEL_FAMILIES.map((f) => f.name).join(', ')})`);
  return family;
}
