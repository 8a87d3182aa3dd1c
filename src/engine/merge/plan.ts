/**
 * Planning a merge from headers alone: open every checkpoint, prove the models are homologous
 * (same tensor names, shapes, and non-float dtypes; same architecture in config.json), resolve
 * every tensor's parameters, and list the output tensors. Anything wrong is reported here,
 * naming the model and tensor, before a single byte is written.
 */
import { Checkpoint, openCheckpoint } from '../checkpoint/checkpoint';
import { Dtype, dtypeSize, isFloatDtype } from '../checkpoint/dtype';
import { TensorSpec } from '../checkpoint/writer';
import { MergeInputError } from '../errors';
import type * as ModelModule from '../families/model';
import { layerPositions, MergeConfig, ModelEntry, resolveParameters } from './config';
import { TensorJob } from './tensor-job';
import { isLoraAdapter } from '../checkpoint/lora';
import { adaptedSource, copyJob, ModelSource, PlanOptions, readArchitecture, toInput, withLora } from './plan-inputs';
import { planSlices } from './slices';
import { applyVocabulary, sameBesidesRows } from './embeddings';
import { MergedVocabulary } from '../vocabulary/merge-vocabulary';

export type { PlanOptions } from './plan-inputs';

export interface MergePlan {
  config: MergeConfig;
  /** config.json for the output when the inputs are a known model family (heads of every fine-tune). */
  outputConfig: Record<string, unknown> | undefined;
  base: Checkpoint | undefined;
  models: Checkpoint[];
  jobs: TensorJob[];
  specs: TensorSpec[];
  metadata: Record<string, string>;
  /** Bytes of tensor data read (every input) and written. */
  inputBytes: number;
  outputBytes: number;
  /** With tokenizer_source: the output vocabulary (its tokenizer is written beside the output). */
  vocabulary?: MergedVocabulary;
}

function describe(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => `"${n}"`).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

/**
 * Throws when `other` is not homologous with `reference`, saying which tensor differs and how.
 * Tensors for which `unmerged` is true (task heads) are not compared.
 */
export function checkHomologous(reference: Checkpoint, other: Checkpoint, unmerged: (name: string) => boolean = () => false, vocabularies = false): void {
  const missing = reference.names.filter((n) => !unmerged(n) && !other.tensors.has(n));
  if (missing.length > 0) throw new MergeInputError(`${other.path} lacks tensor(s) that ${reference.path} has: ${describe(missing)}`);
  const extra = other.names.filter((n) => !unmerged(n) && !reference.tensors.has(n));
  if (extra.length > 0) throw new MergeInputError(`${other.path} has tensor(s) that ${reference.path} lacks: ${describe(extra)}`);
  for (const name of reference.names) {
    if (unmerged(name)) continue;
    const a = reference.tensors.get(name)!;
    const b = other.tensors.get(name)!;
    const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    // With tokenizer_source, embeddings may have a row count of their own: they are laid out anew.
    if (!sameShape && !(vocabularies && sameBesidesRows(name, a.shape, b.shape))) {
      throw new MergeInputError(`tensor "${name}" has shape ${JSON.stringify(b.shape)} in ${other.path} but ${JSON.stringify(a.shape)} in ${reference.path}`);
    }
    if (isFloatDtype(a.dtype) !== isFloatDtype(b.dtype) || (!isFloatDtype(a.dtype) && a.dtype !== b.dtype)) {
      throw new MergeInputError(`tensor "${name}" has dtype ${b.dtype} in ${other.path} but ${a.dtype} in ${reference.path}`);
    }
  }
  const archA = readArchitecture(reference);
  const archB = readArchitecture(other);
  if (archA && archB) {
    for (const key of ['model_type', 'architectures'] as const) {
      if (archA[key] !== undefined && archB[key] !== undefined && JSON.stringify(archA[key]) !== JSON.stringify(archB[key])) {
        throw new MergeInputError(`config.json ${key} is ${JSON.stringify(archB[key])} in ${other.path} but ${JSON.stringify(archA[key])} in ${reference.path}`);
      }
    }
  }
}


/** The model family of a checkpoint whose config.json names one (`apl_family`). */
function familyOf(checkpoint: Checkpoint): ReturnType<typeof ModelModule.readModelConfig> | undefined {
  const arch = readArchitecture(checkpoint) as Record<string, unknown> | undefined;
  // Only our own families: Hugging Face classifiers share one head name, which mergekit merges like any tensor.
  // Loaded only for family models: plain checkpoint merges never pay for loading TensorFlow.js.
  return arch && typeof arch.apl_family === 'string' ? (require('../families/model') as typeof ModelModule).readModelConfig(checkpoint.directory) : undefined;
}

/**
 * Opens a model entry: a checkpoint; MODEL+ADAPTER; or an adapter alone, which adapts the base.
 * An adapter must fit the checkpoint it is applied to, module by module.
 */
function openSource(entry: ModelEntry, base: Checkpoint | undefined, index: number): ModelSource {
  if (entry.lora) return adaptedSource(openCheckpoint(entry.model), entry.lora, `${entry.model}+${entry.lora}`);
  if (isLoraAdapter(entry.model)) {
    if (!base) throw new MergeInputError(`models[${index}]: ${entry.model} is a LoRA adapter; give base_model (the model it adapts), or write MODEL+ADAPTER`);
    return adaptedSource(base, entry.model, entry.model);
  }
  return { checkpoint: openCheckpoint(entry.model), label: entry.model };
}

export function planMerge(config: MergeConfig, options: PlanOptions = {}): MergePlan {
  if (config.slices) return planSlices(config, config.slices, options);
  const base = config.baseModel ? openCheckpoint(config.baseModel) : undefined;
  const sources = config.models.map((entry, i) => openSource(entry, base, i));
  const models = sources.map((source) => source.checkpoint);
  const reference = base ?? models[0];
  // Models of a known family: their task heads are not merged but carried over from each fine-tune.
  const referenceFamily = familyOf(reference);
  const unmerged = (name: string) => referenceFamily?.family.isHeadTensor(name) ?? false;
  for (const model of models) if (model !== reference) checkHomologous(reference, model, unmerged, config.tokenizer !== undefined);
  const trunkNames = reference.names.filter((n) => !unmerged(n));

  const position = layerPositions(reference.names);
  const jobs: TensorJob[] = [];
  const specs: TensorSpec[] = [];
  let inputBytes = 0;
  let outputBytes = 0;
  for (const name of trunkNames) {
    const location = reference.tensors.get(name)!;
    const float = isFloatDtype(location.dtype);
    const outDtype: Dtype = float ? (config.outDtype ?? config.dtype ?? location.dtype) : location.dtype;
    const { global, perModel } = resolveParameters(config, name, position(name));
    if (config.method.name === 'linear' && global.normalize === true && float) {
      const sum = perModel.reduce((acc, p) => acc + (p.weight as number), 0);
      if (sum === 0) throw new MergeInputError(`tensor "${name}": the weights sum to 0, so normalize cannot divide by them`);
    }
    const baseInput = base ? toInput(base.path, base.tensors.get(name)!) : undefined;
    const modelInputs = sources.map((source) => withLora(toInput(source.label, source.checkpoint.tensors.get(name)!), source));
    jobs.push({
      name,
      shape: location.shape,
      kind: float ? 'merge' : 'copy',
      base: baseInput,
      models: modelInputs,
      method: config.method.name,
      globalParameters: global,
      modelParameters: perModel,
      seed: config.seed,
      outDtype,
      nonFinite: options.nonFinite ?? 'error',
    });
    const spec = { name, dtype: outDtype, shape: location.shape };
    specs.push(spec);
    inputBytes += float ? (baseInput?.byteLength ?? 0) + modelInputs.reduce((a, m) => a + m.byteLength, 0) : location.byteLength;
    outputBytes += location.elements * dtypeSize(outDtype);
  }
  let outputConfig: Record<string, unknown> | undefined;
  if (referenceFamily) {
    const tasks: Record<string, number> = {};
    const owner = new Map<string, string>();
    models.forEach((model) => {
      const modelFamily = familyOf(model);
      if (!modelFamily || modelFamily.family.name !== referenceFamily.family.name) {
        throw new MergeInputError(`${model.path}: config.json does not name model family "${referenceFamily.family.name}" as ${reference.path} does`);
      }
      for (const [task, classes] of Object.entries(modelFamily.config.tasks)) {
        if (owner.has(task)) throw new MergeInputError(`task "${task}" has a head in both ${owner.get(task)} and ${model.path}; a merged model keeps one head per task`);
        owner.set(task, model.path);
        tasks[task] = classes;
      }
      // The heads of the model's own tasks (an adapted model also has its base's, unused).
      const ownHeads = Object.keys(modelFamily.config.tasks).flatMap((task) => modelFamily.family.headShapes(modelFamily.config, task).map((s) => s.name));
      for (const name of ownHeads) {
        const location = model.tensors.get(name);
        if (!location) throw new MergeInputError(`${model.path}: has no tensor "${name}", the head its config.json's tasks name`);
        jobs.push({ ...copyJob(name, toInput(model.path, location), options) });
        specs.push({ name, dtype: location.dtype, shape: location.shape });
        inputBytes += location.byteLength;
        outputBytes += location.byteLength;
      }
    });
    outputConfig = referenceFamily.family.configJson({ ...referenceFamily.config, tasks });
  }
  const metadata: Record<string, string> = { format: 'pt', ...(reference.metadata ?? {}) };
  metadata.merge_method = config.method.name;
  if (config.method.stochastic) metadata.merge_seed = String(config.seed);
  const plan: MergePlan = { config, outputConfig, base, models, jobs, specs, metadata, inputBytes, outputBytes };
  plan.vocabulary = applyVocabulary(plan, base ? [base, ...models] : models);
  return plan;
}

