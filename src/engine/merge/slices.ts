/**
 * Frankenmerges (mergekit's `slices:`): the output's layers are taken slice after slice, each from
 * the same `layer_range` of its sources, merged by the method (passthrough: copied), and renumbered
 * from 0; the tensors outside the layers (embeddings, final norm, heads) come from the first
 * slice's sources, merged the same way. config.json follows: `num_hidden_layers` (Hugging Face
 * configs) or `hidden_sizes` (our MLP, whose layers must then chain: each one's input width the
 * previous one's output). Everything is checked from headers before a byte is written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, openCheckpoint, TensorLocation } from '../checkpoint/checkpoint';
import { dtypeSize, isFloatDtype } from '../checkpoint/dtype';
import { TensorSpec } from '../checkpoint/writer';
import { MergeInputError } from '../errors';
import { MergeConfig, resolveParameters, SliceEntry, SliceSource } from './config';
import type { MergePlan } from './plan';
import { adaptedSource, copyJob, ModelSource, PlanOptions, toInput, withLora } from './plan-inputs';
import { TensorJob } from './tensor-job';

import { isLoraAdapter, splitModelReference } from '../checkpoint/lora';
import { applyVocabulary, sameBesidesRows } from './embeddings';

/** "model.layers.12.mlp.up_proj.weight" → head "model.layers.", layer 12, tail ".mlp.up_proj.weight". */
const LAYERED = /^(.*?(?:^|\.)(?:layers|layer|h|blocks|block)\.)(\d+)(\..+)$/;

interface LayerTensor {
  head: string;
  tail: string;
}

interface Layout {
  /** Per layer index: its tensors, in checkpoint order. */
  layers: Map<number, LayerTensor[]>;
  /** Tensors outside the layers, in checkpoint order. */
  others: string[];
}

function layoutOf(checkpoint: Checkpoint): Layout {
  const layers = new Map<number, LayerTensor[]>();
  const others: string[] = [];
  for (const name of checkpoint.names) {
    const match = LAYERED.exec(name);
    if (!match) {
      others.push(name);
      continue;
    }
    const index = Number(match[2]);
    layers.set(index, [...(layers.get(index) ?? []), { head: match[1], tail: match[3] }]);
  }
  return { layers, others };
}

function readConfigJson(checkpoint: Checkpoint): Record<string, unknown> | undefined {
  const path = join(checkpoint.directory, 'config.json');
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new MergeInputError(`${path}: is not valid JSON (${(err as Error).message})`);
  }
}

export function planSlices(config: MergeConfig, slices: readonly SliceEntry[], options: PlanOptions): MergePlan {
  // Opened by reference: a checkpoint, MODEL+ADAPTER, or an adapter alone (which adapts the base).
  const sources = new Map<string, ModelSource>();
  const sourceOf = (reference: string): ModelSource => {
    if (!sources.has(reference)) {
      const { checkpoint, adapter } = splitModelReference(reference);
      let source: ModelSource;
      if (adapter) source = adaptedSource(openCheckpoint(checkpoint), adapter, reference);
      else if (isLoraAdapter(reference)) {
        if (!config.baseModel) throw new MergeInputError(`slices: ${reference} is a LoRA adapter; give base_model (the model it adapts), or write MODEL+ADAPTER`);
        source = adaptedSource(openCheckpoint(config.baseModel), reference, reference);
      } else source = { checkpoint: openCheckpoint(reference), label: reference };
      sources.set(reference, source);
    }
    return sources.get(reference)!;
  };
  const open = (reference: string) => sourceOf(reference).checkpoint;
  const layouts = new Map<string, Layout>();
  const layout = (path: string) => {
    if (!layouts.has(path)) layouts.set(path, layoutOf(open(path)));
    return layouts.get(path)!;
  };
  const method = config.method;
  const baseSeparate = method.needsBase || method.separateBase === true;
  const total = slices.reduce((sum, slice) => sum + slice.sources[0].layers[1] - slice.sources[0].layers[0], 0);
  const jobs: TensorJob[] = [];
  const specs: TensorSpec[] = [];
  let inputBytes = 0;
  let outputBytes = 0;

  /** One output tensor from the same-named tensor (`nameIn(source)`) of each source of a slice. */
  const addJob = (outName: string, slice: SliceEntry, nameIn: (source: SliceSource) => string, position: number, field: (j: number) => string) => {
    const sources = slice.sources;
    const locations: TensorLocation[] = sources.map((source, j) => {
      const location = open(referenceOf(source)).tensors.get(nameIn(source));
      if (!location) throw new MergeInputError(`${field(j)}: ${referenceOf(source)} has no tensor "${nameIn(source)}"`);
      return location;
    });
    const reference = locations[0];
    locations.forEach((location, j) => {
      const vocabularyRows = config.tokenizer !== undefined && sameBesidesRows(outName, location.shape, reference.shape);
      if (JSON.stringify(location.shape) !== JSON.stringify(reference.shape) && !vocabularyRows) {
        throw new MergeInputError(`${field(j)}: tensor "${location.name}" has shape ${JSON.stringify(location.shape)}, but "${reference.name}" of ${sources[0].model} has ${JSON.stringify(reference.shape)}`);
      }
    });
    const float = isFloatDtype(reference.dtype);
    const outDtype = float ? (config.outDtype ?? config.dtype ?? reference.dtype) : reference.dtype;
    inputBytes += locations.reduce((sum, l) => sum + l.byteLength, 0);
    outputBytes += reference.elements * dtypeSize(outDtype);
    specs.push({ name: outName, dtype: outDtype, shape: reference.shape });
    if (!float) {
      jobs.push({ ...copyJob(outName, toInput(sources[0].model, reference), options), name: outName });
      return;
    }
    const baseIndex = baseSeparate ? sources.findIndex((source) => source.model === config.baseModel && !source.lora) : -1;
    const merged = sources.map((source, j) => ({ source, location: locations[j] })).filter((_, j) => j !== baseIndex);
    const { global, perModel } = resolveParameters({ ...config, parameters: { ...config.parameters, ...slice.parameters }, models: merged.map(({ source }) => source) }, outName, position);
    jobs.push({
      name: outName,
      shape: reference.shape,
      kind: 'merge',
      base: baseIndex >= 0 ? toInput(config.baseModel!, locations[baseIndex]) : undefined,
      models: merged.map(({ source, location }) => withLora(toInput(referenceOf(source), location), sourceOf(referenceOf(source)))),
      method: method.name,
      globalParameters: global,
      modelParameters: perModel,
      seed: config.seed,
      outDtype,
      nonFinite: options.nonFinite ?? 'error',
    });
  };

  const first = slices[0];
  const referencePath = referenceOf(first.sources[0]);
  const others = layout(referencePath).others;
  // Tensors before the first layer (embeddings) go first, those after (norm, heads) last, as in the input.
  const firstLayered = open(referencePath).names.findIndex((name) => LAYERED.test(name));
  const before = others.filter((name) => open(referencePath).names.indexOf(name) < firstLayered);
  const after = others.filter((name) => !before.includes(name));
  for (const name of before) addJob(name, first, () => name, 0, (j) => `slices[0].sources[${j}]`);
  let outLayer = 0;
  const outputLayers: Array<{ slice: number; weightShapes: Map<string, readonly number[]> }> = [];
  slices.forEach((slice, s) => {
    const length = slice.sources[0].layers[1] - slice.sources[0].layers[0];
    slice.sources.forEach((source, j) => {
      const available = layout(referenceOf(source)).layers;
      const [from, to] = source.layers;
      if (!available.has(to - 1)) {
        throw new MergeInputError(`slices[${s}].sources[${j}].layer_range: [${from}, ${to}] goes past the ${available.size} layer(s) of ${source.model}`);
      }
    });
    for (let offset = 0; offset < length; offset++) {
      const k = outLayer++;
      const position = total > 1 ? k / (total - 1) : 0;
      const sourceLayer = slice.sources[0].layers[0] + offset;
      const shapes = new Map<string, readonly number[]>();
      for (const { head, tail } of layout(referenceOf(slice.sources[0])).layers.get(sourceLayer)!) {
        const outName = `${head}${k}${tail}`;
        addJob(outName, slice, (source) => `${head}${source.layers[0] + offset}${tail}`, position, (j) => `slices[${s}].sources[${j}]`);
        shapes.set(tail, specs[specs.length - 1].shape);
      }
      outputLayers.push({ slice: s, weightShapes: shapes });
    }
  });
  for (const name of after) addJob(name, first, () => name, 1, (j) => `slices[0].sources[${j}]`);

  const headShapes = specs.filter((spec) => after.includes(spec.name) && /^heads\.[^.]+\.weight$/.test(spec.name));
  const outputConfig = slicedConfig(readConfigJson(open(config.baseModel ?? referencePath)), outputLayers, total, headShapes);
  const reference = open(referencePath);
  const metadata: Record<string, string> = { format: 'pt', ...(reference.metadata ?? {}), merge_method: method.name };
  if (method.stochastic) metadata.merge_seed = String(config.seed);
  const models = config.models.map((m) => open(referenceOf(m)));
  const base = config.baseModel ? open(config.baseModel) : undefined;
  const plan: MergePlan = { config, outputConfig, base, models, jobs, specs, metadata, inputBytes, outputBytes };
  plan.vocabulary = applyVocabulary(plan, base ? [base, ...models] : models);
  return plan;
}

/** How a source is opened: its checkpoint, or MODEL+ADAPTER. */
const referenceOf = (source: { model: string; lora?: string }) => (source.lora ? `${source.model}+${source.lora}` : source.model);

/**
 * config.json of the output: the layer count follows the slices. Our MLP's layers must chain (each
 * one's input width the previous one's output); its hidden sizes are the layers' output widths.
 */
function slicedConfig(
  json: Record<string, unknown> | undefined,
  layers: ReadonlyArray<{ slice: number; weightShapes: Map<string, readonly number[]> }>,
  total: number,
  heads: readonly TensorSpec[],
): Record<string, unknown> | undefined {
  if (!json) return undefined;
  const out: Record<string, unknown> = { ...json };
  if (typeof json.num_hidden_layers === 'number') out.num_hidden_layers = total;
  if (json.apl_family === 'mlp') {
    let width = json.input_size as number;
    out.hidden_sizes = layers.map(({ slice, weightShapes }, k) => {
      const shape = weightShapes.get('.weight');
      if (!shape || shape.length !== 2) throw new MergeInputError(`slices[${slice}]: output layer ${k} has no two-dimensional ".weight"`);
      if (shape[1] !== width) throw new MergeInputError(`slices[${slice}]: the layers do not line up: output layer ${k} takes ${shape[1]} inputs, but ${k === 0 ? 'the model\'s input has' : `layer ${k - 1} gives`} ${width}`);
      width = shape[0];
      return shape[0];
    });
    for (const head of heads) {
      if (head.shape[1] !== width) throw new MergeInputError(`slices: the layers do not line up: "${head.name}" takes ${head.shape[1]} inputs, but the last layer gives ${width}`);
    }
  }
  return out;
}
