/**
 * The model families the engine knows: by the `apl_family` field of config.json, or, for
 * Hugging Face checkpoints, by `model_type` (bert and roberta read as the encoder family; llama,
 * mistral and qwen2 as the decoder family).
 */
import { decoderFamily } from './decoder';
import { encoderFamily } from './encoder';
import { mlpFamily } from './mlp';
import { FamilyConfig, ModelFamily } from './types';

export const MODEL_FAMILIES: readonly ModelFamily<FamilyConfig>[] = [
  mlpFamily as unknown as ModelFamily<FamilyConfig>,
  encoderFamily as unknown as ModelFamily<FamilyConfig>,
  decoderFamily as unknown as ModelFamily<FamilyConfig>,
];

const HUGGING_FACE_TYPES: Record<string, string> = { bert: 'encoder', roberta: 'encoder', llama: 'decoder', mistral: 'decoder', qwen2: 'decoder' };

export function getFamily(name: string, file: string): ModelFamily<FamilyConfig> {
  const family = MODEL_FAMILIES.find((f) => f.name === name);
  if (!family) throw new Error(`${file}: apl_family "${name}" is not a model family the engine knows (known: ${MODEL_FAMILIES.map((f) => f.name).join(', ')})`);
  return family;
}

/** The family a config.json describes, or an error saying why none fits. */
export function familyForConfig(json: Record<string, unknown>, file: string): ModelFamily<FamilyConfig> {
  if (typeof json.apl_family === 'string') return getFamily(json.apl_family, file);
  const viaType = typeof json.model_type === 'string' ? HUGGING_FACE_TYPES[json.model_type] : undefined;
  if (viaType) return getFamily(viaType, file);
  throw new Error(`${file}: neither apl_family nor a supported model_type (${Object.keys(HUGGING_FACE_TYPES).join(', ')}); got model_type ${JSON.stringify(json.model_type)}`);
}

export const knownModelTypes = (): string[] => Object.keys(HUGGING_FACE_TYPES);
export const isKnownModelType = (modelType: unknown): boolean => typeof modelType === 'string' && Object.hasOwn(HUGGING_FACE_TYPES, modelType);
