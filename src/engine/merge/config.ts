/**
 * The mergekit-style YAML configuration: parsing, strict validation (an unknown or unsupported key
 * is an error that names it), and resolution of parameters for one tensor with mergekit's
 * precedence: a model's own `parameters:` over the global `parameters:` over the method's default.
 * A parameter value is a scalar, a gradient (a list of numbers interpolated across layers), or a
 * list of `{filter, value}` conditions matched against the tensor name (first match wins).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { FloatDtype, parseConfigDtype } from '../checkpoint/dtype';
import { ConfigError } from '../errors';
import { getMergeMethod } from '../methods/registry';
import { MergeMethod, ParameterDef, ParameterValue } from '../methods/types';
import { TokenEmbedding, TokenEmbeddingSource, TokenizerSettings, TokenizerSource } from '../vocabulary/merge-vocabulary';

export type Gradient = number[];
export type Condition = { filter: string | undefined; value: ParameterValue | Gradient };
export type RawParameter = ParameterValue | Gradient | Condition[];

export interface ModelEntry {
  /** Absolute path of the checkpoint (or of a LoRA adapter, which then adapts the base_model). */
  model: string;
  /** mergekit's `MODEL+ADAPTER`: the LoRA adapter applied to `model`. */
  lora?: string;
  /** The path as written in the config (for the model card). */
  given: string;
  parameters: Record<string, RawParameter>;
}

/** One source of a slice: a model's layers [from, to) (mergekit's `layer_range`). */
export interface SliceSource extends ModelEntry {
  layers: [number, number];
}

/** A slice: output layers taken from the same range of each of its sources, merged by the method. */
export interface SliceEntry {
  sources: SliceSource[];
  /** The slice's own global parameters, over the top-level ones for its tensors. */
  parameters: Record<string, RawParameter>;
}

export interface MergeConfig {
  /** Where the config came from (a file path, or a label), for error messages. */
  source: string;
  method: MergeMethod;
  baseModel: string | undefined;
  /** base_model as written in the config. */
  baseModelGiven: string | undefined;
  /** The models merged (with slices: every source that is not the base, once). */
  models: ModelEntry[];
  /** Set for a frankenmerge (`slices:`): the output's layers, slice after slice. */
  slices?: SliceEntry[];
  parameters: Record<string, RawParameter>;
  dtype: FloatDtype | undefined;
  outDtype: FloatDtype | undefined;
  seed: number;
  /** Whether the seed was written in the config (otherwise the default was used). */
  seedGiven: boolean;
  /** The YAML text as given. */
  text: string;
  /** mergekit's `tokenizer_source` / `tokenizer:`: the output vocabulary, and embeddings laid out for it. */
  tokenizer?: TokenizerSettings;
  /** mergekit's `embed_slerp: true` (with `t`): embeddings are SLERPed between the base and the other model. */
  embedSlerp?: RawParameter;
}

export const DEFAULT_SEED = 0;

const TOP_LEVEL_KEYS = ['merge_method', 'base_model', 'models', 'slices', 'parameters', 'dtype', 'out_dtype', 'seed', 'tokenizer_source', 'tokenizer'];
const TOKENIZER_KEYS = ['source', 'tokens', 'pad_to_multiple_of'];
const TOKEN_KEYS = ['source', 'force'];
const SLICE_KEYS = ['sources', 'parameters'];
const SOURCE_KEYS = ['model', 'layer_range', 'parameters'];
const MODEL_KEYS = ['model', 'parameters'];

export function readMergeConfig(path: string): MergeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, '(file)', `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseMergeConfig(text, path, dirname(resolve(path)));
}


/** A config value as the user wrote it: YAML's .nan and .inf (and 1e400, which overflows to Infinity) are not JSON's null. */
function shown(value: unknown): string {
  if (typeof value === 'number' && Number.isNaN(value)) return '.nan (not a number)';
  if (value === Infinity) return '.inf (or a number beyond float64, such as 1e400)';
  if (value === -Infinity) return '-.inf (or a number beyond float64, such as -1e400)';
  return JSON.stringify(value);
}
/** Parses YAML text; relative model paths are resolved against `baseDirectory`. */
export function parseMergeConfig(text: string, source: string, baseDirectory: string): MergeConfig {
  const fail = (field: string, reason: string): never => {
    throw new ConfigError(source, field, reason);
  };
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) fail('(yaml)', doc.errors[0].message);
  if (!isMap(doc.contents)) fail('(top level)', 'must be a mapping');
  const root = doc.toJS() as Record<string, unknown>;
  for (const key of Object.keys(root)) {
    if (!TOP_LEVEL_KEYS.includes(key)) {
      fail(key, `unsupported key (supported: ${TOP_LEVEL_KEYS.join(', ')})`);
    }
  }
  if (typeof root.merge_method !== 'string') fail('merge_method', 'is required and must be a string');
  let method: MergeMethod;
  try {
    method = getMergeMethod(root.merge_method as string);
  } catch (err) {
    return fail('merge_method', (err as Error).message);
  }
  const resolvePath = (field: string, value: unknown): string => {
    if (typeof value !== 'string' || value.length === 0) fail(field, 'must be a path');
    return isAbsolute(value as string) ? (value as string) : resolve(baseDirectory, value as string);
  };
  const baseModel = root.base_model === undefined || root.base_model === null ? undefined : resolvePath('base_model', root.base_model);
  if (method.needsBase && !baseModel) fail('base_model', `is required by merge_method ${method.name}`);

  const allParameters = new Map<string, ParameterDef>();
  for (const def of [...method.globalParameters, ...method.modelParameters]) allParameters.set(def.name, def);
  const modelParameterNames = new Set(method.modelParameters.map((p) => p.name));
  const modelEntry = (entry: unknown, field: string, keys: readonly string[]): ModelEntry & { record: Record<string, unknown> } => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail(field, 'must be a mapping with "model:"');
    for (const key of Object.keys(entry)) {
      if (!keys.includes(key)) fail(`${field}.${key}`, `unsupported key (supported: ${keys.join(', ')})`);
    }
    const record = entry as Record<string, unknown>;
    // mergekit's MODEL+ADAPTER: a LoRA adapter applied to a model.
    const [modelPath, loraPath, ...rest] = typeof record.model === 'string' ? record.model.split('+') : [record.model];
    if (rest.length > 0) fail(`${field}.model`, 'takes one adapter at most (MODEL+ADAPTER)');
    const model = resolvePath(`${field}.model`, modelPath);
    const lora = loraPath === undefined ? undefined : resolvePath(`${field}.model`, loraPath);
    const parameters = parseParameters(record.parameters, `${field}.parameters`, allParameters, fail, baseDirectory);
    for (const name of Object.keys(parameters)) {
      if (!modelParameterNames.has(name)) fail(`${field}.parameters.${name}`, `is a global parameter of ${method.name}; set it under the top-level parameters:`);
    }
    return { model, ...(lora ? { lora } : {}), given: record.model as string, parameters, record };
  };

  let slices: SliceEntry[] | undefined;
  let models: ModelEntry[];
  if (root.slices !== undefined) {
    if (root.models !== undefined) fail('slices', 'cannot be given with models: (a frankenmerge lists its models in the slices)');
    slices = parseSlices(root.slices, method, baseModel, (entry, field) => modelEntry(entry, field, SOURCE_KEYS), (raw, field) => {
      const parameters = parseParameters(raw, field, allParameters, fail, baseDirectory);
      for (const name of Object.keys(parameters)) if (modelParameterNames.has(name)) fail(`${field}.${name}`, `is a per-model parameter of ${method.name}; set it on the slice's sources`);
      return parameters;
    }, fail);
    // The models merged: every source that is not the base, once, in the order first listed.
    models = [];
    for (const source of slices.flatMap((slice) => slice.sources)) {
      if ((source.model !== baseModel || source.lora) && !models.some((m) => m.model === source.model && m.lora === source.lora)) {
        models.push({ model: source.model, ...(source.lora ? { lora: source.lora } : {}), given: source.given, parameters: source.parameters });
      }
    }
  } else {
    if (!Array.isArray(root.models) || root.models.length === 0) fail('models', 'must be a non-empty list');
    models = (root.models as unknown[]).map((entry, i) => {
      const { record: _record, ...model } = modelEntry(entry, `models[${i}]`, MODEL_KEYS);
      void _record;
      return model;
    });
  }
  if (!slices && baseModel && models.some((m) => m.model === baseModel && !m.lora) && (method.needsBase || method.separateBase)) {
    // mergekit lists the base among the models at times; it contributes a zero task vector, so drop it.
    const index = models.findIndex((m) => m.model === baseModel && !m.lora);
    models.splice(index, 1);
    if (models.length === 0) fail('models', 'lists only the base model');
  }
  if (!slices) {
    const countProblem = method.checkModels?.(models.length);
    if (countProblem) fail('models', countProblem);
  }
  const { embedSlerp, rest: topParameters } = parseEmbedSlerp(root.parameters, allParameters, fail, baseDirectory);
  const parameters = parseParameters(topParameters, 'parameters', allParameters, fail, baseDirectory);
  const tokenizer = parseTokenizer(root, resolvePath, fail);
  if (embedSlerp !== undefined && !tokenizer) fail('parameters.embed_slerp', 'applies with tokenizer_source (or tokenizer:) only: it is how the re-laid-out embeddings are merged');
  if (embedSlerp !== undefined && !(baseModel && models.length === 1)) fail('parameters.embed_slerp', 'SLERPs the embeddings of exactly two models: the base_model and one other');

  const dtypeOf = (field: string): FloatDtype | undefined => {
    const value = root[field];
    if (value === undefined || value === null) return undefined;
    const dtype = typeof value === 'string' ? parseConfigDtype(value) : undefined;
    if (!dtype) return fail(field, `${JSON.stringify(value)} is not one of float32, float16, bfloat16`);
    return dtype;
  };
  let seed = DEFAULT_SEED;
  const seedGiven = root.seed !== undefined && root.seed !== null;
  if (seedGiven) {
    if (!Number.isSafeInteger(root.seed) || (root.seed as number) < 0) fail('seed', 'must be a non-negative integer');
    seed = root.seed as number;
  }
  const baseModelGiven = baseModel ? (root.base_model as string) : undefined;
  return {
    source, method, baseModel, baseModelGiven, models, slices, parameters, dtype: dtypeOf('dtype'), outDtype: dtypeOf('out_dtype'), seed, seedGiven, text,
    ...(tokenizer ? { tokenizer } : {}),
    ...(embedSlerp !== undefined ? { embedSlerp } : {}),
  };
}

const SLERP_T: ParameterDef = { name: 't', type: 'number', min: 0, max: 1, description: 'embed_slerp: 0 is the base, 1 the other model' };

/**
 * `parameters.embed_slerp` (mergekit's flag for merging re-laid-out embeddings by SLERP): taken out
 * of the method's parameters; when true it needs `t`, which a method without a `t` of its own
 * may then be given for it. Returns t (raw), and the parameters left for the method.
 */
function parseEmbedSlerp(raw: unknown, known: Map<string, ParameterDef>, fail: (f: string, r: string) => never, baseDirectory: string): { embedSlerp: RawParameter | undefined; rest: unknown } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !('embed_slerp' in raw)) return { embedSlerp: undefined, rest: raw };
  const { embed_slerp: flag, ...rest } = raw as Record<string, unknown>;
  if (typeof flag !== 'boolean') fail('parameters.embed_slerp', `must be true or false, got ${shown(flag)}`);
  if (!flag) return { embedSlerp: undefined, rest };
  const ownT = known.has('t');
  if (rest.t === undefined) fail('parameters.t', 'is required by embed_slerp');
  const t = parseParameters({ t: rest.t }, 'parameters', new Map([['t', known.get('t') ?? SLERP_T]]), fail, baseDirectory).t;
  if (!ownT) delete rest.t;
  return { embedSlerp: t, rest };
}

/** `tokenizer_source: base | union | model:PATH | PATH`, or mergekit's `tokenizer: {source, tokens, pad_to_multiple_of}`. */
function parseTokenizer(root: Record<string, unknown>, resolvePath: (field: string, value: unknown) => string, fail: (f: string, r: string) => never): TokenizerSettings | undefined {
  const sourceOf = (field: string, value: unknown): TokenizerSource => {
    if (value === 'base' || value === 'union') return { kind: value };
    if (typeof value !== 'string' || value.length === 0) return fail(field, `must be base, union, or model:PATH, got ${shown(value)}`);
    return { kind: 'model', model: resolvePath(field, value.startsWith('model:') ? value.slice('model:'.length) : value) };
  };
  if (root.tokenizer_source !== undefined && root.tokenizer !== undefined) fail('tokenizer_source', 'cannot be given with tokenizer: (set tokenizer.source instead)');
  if (root.tokenizer_source !== undefined && root.tokenizer_source !== null) return { source: sourceOf('tokenizer_source', root.tokenizer_source), tokens: new Map() };
  if (root.tokenizer === undefined || root.tokenizer === null) return undefined;
  const block = root.tokenizer;
  if (typeof block !== 'object' || Array.isArray(block)) return fail('tokenizer', 'must be a mapping (source, tokens, pad_to_multiple_of)');
  for (const key of Object.keys(block)) if (!TOKENIZER_KEYS.includes(key)) fail(`tokenizer.${key}`, `unsupported key (supported: ${TOKENIZER_KEYS.join(', ')})`);
  const { source = 'union', tokens: rawTokens, pad_to_multiple_of: pad } = block as Record<string, unknown>;
  if (pad !== undefined && pad !== null && (!Number.isSafeInteger(pad) || (pad as number) < 1)) fail('tokenizer.pad_to_multiple_of', `must be a positive integer, got ${shown(pad)}`);
  const tokens = new Map<string, TokenEmbedding>();
  if (rawTokens !== undefined && rawTokens !== null) {
    if (typeof rawTokens !== 'object' || Array.isArray(rawTokens)) fail('tokenizer.tokens', 'must be a mapping from token to {source, force}');
    for (const [token, entry] of Object.entries(rawTokens as Record<string, unknown>)) {
      const field = `tokenizer.tokens["${token}"]`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(field, 'must be a mapping with source: (and force:)');
      for (const key of Object.keys(entry as object)) if (!TOKEN_KEYS.includes(key)) fail(`${field}.${key}`, `unsupported key (supported: ${TOKEN_KEYS.join(', ')})`);
      const { source: rawSource, force = false } = entry as Record<string, unknown>;
      if (typeof force !== 'boolean') fail(`${field}.force`, `must be true or false, got ${shown(force)}`);
      tokens.set(token, { source: tokenSource(`${field}.source`, rawSource, resolvePath, fail), force: force as boolean });
    }
  }
  return { source: sourceOf('tokenizer.source', source), tokens, ...(pad ? { padToMultipleOf: pad as number } : {}) };
}

/** A token's embedding source: a model path, `{kind: zero}`, or `{kind: model_token, model, token | token_id}`. */
function tokenSource(field: string, raw: unknown, resolvePath: (field: string, value: unknown) => string, fail: (f: string, r: string) => never): TokenEmbeddingSource {
  if (typeof raw === 'string') return { kind: 'model', model: resolvePath(field, raw) };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail(field, 'must be a model path, {kind: zero}, or {kind: model_token, model, token | token_id}');
  const { kind, model, token, token_id: tokenId, ...extra } = raw as Record<string, unknown>;
  const unknownKey = Object.keys(extra)[0];
  if (unknownKey !== undefined) fail(`${field}.${unknownKey}`, 'unsupported key (supported: kind, model, token, token_id)');
  if (kind === 'zero') {
    if (model !== undefined || token !== undefined || tokenId !== undefined) fail(field, 'kind zero takes no model, token or token_id');
    return { kind: 'zero' };
  }
  if (kind !== 'model_token') return fail(`${field}.kind`, `must be zero or model_token, got ${shown(kind)}`);
  if ((token === undefined) === (tokenId === undefined)) fail(field, 'model_token takes one of token or token_id');
  if (token !== undefined && typeof token !== 'string') fail(`${field}.token`, `must be a string, got ${shown(token)}`);
  if (tokenId !== undefined && (!Number.isSafeInteger(tokenId) || (tokenId as number) < 0)) fail(`${field}.token_id`, `must be a non-negative integer, got ${shown(tokenId)}`);
  return { kind: 'model_token', model: resolvePath(`${field}.model`, model), ...(token !== undefined ? { token: token as string } : { tokenId: tokenId as number }) };
}

/**
 * `slices:` — each a mapping with `sources:`, each source a model with `layer_range: [from, to)`.
 * The sources of one slice cover ranges of one length; a method that needs a base finds it among
 * every slice's sources, and the others are checked against the method's model count.
 */
function parseSlices(
  raw: unknown,
  method: MergeMethod,
  baseModel: string | undefined,
  sourceEntry: (entry: unknown, field: string) => ModelEntry & { record: Record<string, unknown> },
  sliceParameters: (raw: unknown, field: string) => Record<string, RawParameter>,
  fail: (field: string, reason: string) => never,
): SliceEntry[] {
  if (method.prepare) fail('slices', `merge_method ${method.name} prepares from whole models and cannot merge slices`);
  if (!Array.isArray(raw) || raw.length === 0) return fail('slices', 'must be a non-empty list');
  return raw.map((slice, s) => {
    const field = `slices[${s}]`;
    if (typeof slice !== 'object' || slice === null || Array.isArray(slice)) return fail(field, 'must be a mapping with "sources:"');
    for (const key of Object.keys(slice)) if (!SLICE_KEYS.includes(key)) fail(`${field}.${key}`, `unsupported key (supported: ${SLICE_KEYS.join(', ')})`);
    const list = (slice as Record<string, unknown>).sources;
    if (!Array.isArray(list) || list.length === 0) return fail(`${field}.sources`, 'must be a non-empty list');
    const sources = list.map((entry, j): SliceSource => {
      const { record, ...model } = sourceEntry(entry, `${field}.sources[${j}]`);
      const range = record.layer_range;
      const rangeField = `${field}.sources[${j}].layer_range`;
      if (!Array.isArray(range) || range.length !== 2 || !range.every((v) => Number.isInteger(v) && v >= 0)) return fail(rangeField, `must be [from, to], two non-negative integers, got ${JSON.stringify(range)}`);
      if (range[0] >= range[1]) fail(rangeField, `[${range[0]}, ${range[1]}] is empty: from must be below to`);
      return { ...model, layers: [range[0], range[1]] };
    });
    const length = sources[0].layers[1] - sources[0].layers[0];
    sources.forEach((source, j) => {
      const own = source.layers[1] - source.layers[0];
      if (own !== length) fail(`${field}.sources[${j}].layer_range`, `covers ${own} layers, but sources[0] covers ${length}: the sources of a slice are merged layer by layer`);
    });
    if (method.needsBase) {
      if (!sources.some((source) => source.model === baseModel)) fail(`${field}.sources`, `merge_method ${method.name} needs the base_model among every slice's sources`);
    }
    const others = sources.filter((source) => !(method.needsBase || method.separateBase) || source.model !== baseModel).length;
    const problem = method.checkModels?.(others);
    if (problem) fail(`${field}.sources`, problem);
    return { sources, parameters: sliceParameters((slice as Record<string, unknown>).parameters, `${field}.parameters`) };
  });
}

function checkScalar(def: ParameterDef, value: unknown, field: string, fail: (f: string, r: string) => never, baseDirectory: string): ParameterValue {
  if (def.type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) return fail(field, `must be a finite number, got ${shown(value)}`);
    if (def.min !== undefined && value < def.min) fail(field, `${value} is below the minimum ${def.min}`);
    if (def.max !== undefined && value > def.max) fail(field, `${value} is above the maximum ${def.max}`);
    return value;
  }
  if (def.type === 'boolean') {
    if (typeof value !== 'boolean') return fail(field, `must be true or false, got ${shown(value)}`);
    return value;
  }
  if (typeof value !== 'string') return fail(field, `must be a string, got ${shown(value)}`);
  if (def.choices && !def.choices.includes(value)) fail(field, `must be one of ${def.choices.join(', ')}, got "${value}"`);
  if (def.path) return isAbsolute(value) ? value : resolve(baseDirectory, value);
  return value;
}

function checkValue(def: ParameterDef, value: unknown, field: string, fail: (f: string, r: string) => never, baseDirectory: string): ParameterValue | Gradient {
  if (Array.isArray(value)) {
    if (def.type !== 'number') return fail(field, 'a gradient (list of numbers) only applies to numeric parameters');
    if (value.length === 0) return fail(field, 'gradient is empty');
    return value.map((v, i) => checkScalar(def, v, `${field}[${i}]`, fail, baseDirectory) as number);
  }
  return checkScalar(def, value, field, fail, baseDirectory);
}

function parseParameters(
  raw: unknown,
  field: string,
  known: Map<string, ParameterDef>,
  fail: (f: string, r: string) => never,
  baseDirectory: string,
): Record<string, RawParameter> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) return fail(field, 'must be a mapping');
  const result: Record<string, RawParameter> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const def = known.get(name);
    const path = `${field}.${name}`;
    if (!def) fail(path, `unknown parameter (this method takes: ${[...known.keys()].join(', ')})`);
    const isConditionList = Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
    if (isConditionList) {
      result[name] = (value as Array<Record<string, unknown>>).map((condition, i) => {
        for (const key of Object.keys(condition)) {
          if (key !== 'filter' && key !== 'value') fail(`${path}[${i}].${key}`, 'unsupported key (supported: filter, value)');
        }
        if (condition.filter !== undefined && typeof condition.filter !== 'string') fail(`${path}[${i}].filter`, 'must be a string');
        if (!('value' in condition)) fail(`${path}[${i}]`, 'has no value');
        return { filter: condition.filter as string | undefined, value: checkValue(def!, condition.value, `${path}[${i}].value`, fail, baseDirectory) };
      });
    } else {
      result[name] = checkValue(def!, value, path, fail, baseDirectory);
    }
  }
  return result;
}

/** Where a tensor sits in the depth of the network, in [0, 1], for gradients. */
export type LayerPosition = (tensorName: string) => number;

const LAYER_INDEX = /(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\./;

/**
 * Positions from the tensor names: layer i of n sits at i/(n−1); tensors outside the numbered
 * layers sit at 0 when they come before the first layer in file order (embeddings), else at 1.
 */
export function layerPositions(names: readonly string[]): LayerPosition {
  let maxIndex = -1;
  let firstLayered = names.length;
  names.forEach((name, i) => {
    const match = LAYER_INDEX.exec(name);
    if (match) {
      maxIndex = Math.max(maxIndex, Number(match[1]));
      firstLayered = Math.min(firstLayered, i);
    }
  });
  const order = new Map(names.map((name, i) => [name, i]));
  return (name) => {
    const match = LAYER_INDEX.exec(name);
    if (match) return maxIndex > 0 ? Number(match[1]) / maxIndex : 0;
    return (order.get(name) ?? 0) < firstLayered ? 0 : 1;
  };
}

function interpolate(gradient: Gradient, position: number): number {
  if (gradient.length === 1) return gradient[0];
  const x = position * (gradient.length - 1);
  const i = Math.min(Math.floor(x), gradient.length - 2);
  const f = x - i;
  return gradient[i] * (1 - f) + gradient[i + 1] * f;
}

export function resolveRaw(raw: RawParameter, tensorName: string, position: number): ParameterValue | undefined {
  if (Array.isArray(raw) && raw.length > 0 && typeof raw[0] === 'object') {
    for (const condition of raw as Condition[]) {
      if (condition.filter === undefined || tensorName.includes(condition.filter)) {
        return Array.isArray(condition.value) ? interpolate(condition.value, position) : condition.value;
      }
    }
    return undefined;
  }
  if (Array.isArray(raw)) return interpolate(raw as Gradient, position);
  return raw as ParameterValue;
}

export interface ResolvedParameters {
  global: Record<string, ParameterValue>;
  perModel: Array<Record<string, ParameterValue>>;
}

/** The parameters in force for one tensor; throws naming the model when a required one is missing. */
export function resolveParameters(config: MergeConfig, tensorName: string, position: number): ResolvedParameters {
  const { method } = config;
  const global: Record<string, ParameterValue> = {};
  for (const def of method.globalParameters) {
    const value = config.parameters[def.name] !== undefined ? resolveRaw(config.parameters[def.name], tensorName, position) : undefined;
    const resolved = value ?? def.default;
    if (resolved === undefined) throw new ConfigError(config.source, `parameters.${def.name}`, `is required by ${method.name}`);
    global[def.name] = resolved;
  }
  const globalProblem = method.checkGlobal?.(global);
  if (globalProblem) throw new ConfigError(config.source, 'parameters', `${globalProblem} (tensor "${tensorName}")`);
  const perModel = config.models.map((entry, i) => {
    const values: Record<string, ParameterValue> = {};
    for (const def of method.modelParameters) {
      const own = entry.parameters[def.name] !== undefined ? resolveRaw(entry.parameters[def.name], tensorName, position) : undefined;
      const shared = config.parameters[def.name] !== undefined ? resolveRaw(config.parameters[def.name], tensorName, position) : undefined;
      const resolved = own ?? shared ?? def.default;
      if (resolved === undefined) {
        throw new ConfigError(config.source, `models[${i}].parameters.${def.name}`, `is required by ${method.name} (for tensor "${tensorName}" of ${entry.model})`);
      }
      values[def.name] = resolved;
    }
    const problem = method.checkParameters?.(global, values);
    if (problem) throw new ConfigError(config.source, `models[${i}].parameters`, `${problem} (tensor "${tensorName}")`);
    return values;
  });
  return { global, perModel };
}
