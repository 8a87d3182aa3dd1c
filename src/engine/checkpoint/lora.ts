/**
 * LoRA/PEFT adapters as fine-tunes: a directory with `adapter_config.json` and
 * `adapter_model.safetensors`. Each adapted module's delta is scale · B·A (scale = lora_alpha / r,
 * or lora_alpha / √r with `use_rslora`), added to the base's tensor of that module when the tensor
 * is read — one tensor at a time, never the whole model. Embedding adapters (`lora_embedding_A/B`)
 * and `fan_in_fan_out` layers add the transpose. Anything that does not fit the base is an error
 * naming the file, the field or the tensor.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../errors';
import { Checkpoint, openCheckpoint, TensorLocation } from './checkpoint';
import { isFloatDtype } from './dtype';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** How one base tensor is adapted: base + scale · B·A (transposed when `transpose`). */
export interface LoraTarget {
  a: TensorLocation;
  b: TensorLocation;
  scale: number;
  transpose: boolean;
}

export interface LoraAdapter {
  path: string;
  rank: number;
  scale: number;
  /** Base tensor name → its low-rank update. */
  targets: Map<string, LoraTarget>;
  /** PEFT's `modules_to_save`: whole tensors that replace (or add to) the base's, by name. */
  saved: Map<string, TensorLocation>;
}

export function isLoraAdapter(path: string): boolean {
  return existsSync(join(path, ADAPTER_CONFIG));
}

/** mergekit's model reference: a checkpoint, or CHECKPOINT+ADAPTER. */
export function splitModelReference(reference: string): { checkpoint: string; adapter?: string } {
  const [checkpoint, adapter] = reference.split('+');
  return adapter === undefined ? { checkpoint } : { checkpoint, adapter };
}

/** The reference of a model to run: an adapter alone adapts `base` (it has no weights of its own to run). */
export function runnableReference(model: string, adapter: string | undefined, base: string | undefined): string {
  if (adapter) return `${model}+${adapter}`;
  if (base && isLoraAdapter(model)) return `${base}+${model}`;
  return model;
}

/** "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" → module "model.layers.0.self_attn.q_proj", part A. */
const LORA_TENSOR = /^(?:base_model\.model\.)?(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.[^.]+)?(?:\.weight)?$/;

export function readLoraAdapter(path: string): LoraAdapter {
  const configFile = join(path, ADAPTER_CONFIG);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(configFile, `is not valid JSON (${(err as Error).message})`);
  }
  const fail = (field: string, reason: string): never => {
    throw new CheckpointError(configFile, `${field}: ${reason}`);
  };
  if (config.peft_type !== undefined && config.peft_type !== 'LORA') fail('peft_type', `is ${JSON.stringify(config.peft_type)}; only LORA adapters can be merged`);
  const rank = config.r;
  if (!Number.isInteger(rank) || (rank as number) < 1) fail('r', `must be a positive integer, got ${JSON.stringify(rank)}`);
  const alpha = config.lora_alpha ?? rank;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) fail('lora_alpha', `must be a number, got ${JSON.stringify(alpha)}`);
  for (const field of ['rank_pattern', 'alpha_pattern']) {
    const value = config[field];
    if (value && typeof value === 'object' && Object.keys(value).length > 0) fail(field, 'per-module ranks or alphas are not supported yet');
  }
  if (config.use_dora === true) fail('use_dora', 'DoRA adapters are not supported');
  const scale = (alpha as number) / (config.use_rslora === true ? Math.sqrt(rank as number) : (rank as number));
  const fanInFanOut = config.fan_in_fan_out === true;
  const toSave = config.modules_to_save ?? [];
  if (!Array.isArray(toSave) || !toSave.every((m) => typeof m === 'string')) fail('modules_to_save', `must be a list of module names, got ${JSON.stringify(toSave)}`);
  const weights = openCheckpoint(join(path, ADAPTER_WEIGHTS));
  const parts = new Map<string, { a?: TensorLocation; b?: TensorLocation; embedding: boolean }>();
  const saved = new Map<string, TensorLocation>();
  for (const name of weights.names) {
    const match = LORA_TENSOR.exec(name);
    if (!match) {
      // PEFT saves a modules_to_save copy under the module's own name ("base_model.model.score.weight").
      const tensor = name.replace(/^base_model\.model\./, '');
      const module = tensor.slice(0, tensor.lastIndexOf('.'));
      if (!(toSave as string[]).some((m) => module === m || module.endsWith(`.${m}`))) {
        throw new CheckpointError(weights.tensors.get(name)!.file, `is neither a LoRA A or B matrix nor a tensor of a module listed in ${ADAPTER_CONFIG}'s modules_to_save (${(toSave as string[]).join(', ') || 'none'})`, name);
      }
      saved.set(tensor, weights.tensors.get(name)!);
      continue;
    }
    const entry = parts.get(match[1]) ?? { embedding: match[2].startsWith('lora_embedding') };
    if (match[2].endsWith('A')) entry.a = weights.tensors.get(name);
    else entry.b = weights.tensors.get(name);
    parts.set(match[1], entry);
  }
  const targets = new Map<string, LoraTarget>();
  for (const [module, { a, b, embedding }] of parts) {
    const location = (a ?? b)!;
    if (!a || !b) throw new CheckpointError(location.file, `has ${a ? 'A' : 'B'} but no ${a ? 'B' : 'A'} matrix for module "${module}"`, location.name);
    for (const m of [a, b]) {
      if (m.shape.length !== 2 || !isFloatDtype(m.dtype)) throw new CheckpointError(m.file, `must be a two-dimensional float matrix, is ${m.dtype} ${JSON.stringify(m.shape)}`, m.name);
    }
    if (a.shape[0] !== rank || b.shape[1] !== rank) throw new CheckpointError(a.file, `A is ${JSON.stringify(a.shape)} and B ${JSON.stringify(b.shape)}, which do not meet at the adapter's r = ${rank}`, a.name);
    targets.set(`${module}.weight`, { a, b, scale, transpose: embedding || fanInFanOut });
  }
  if (targets.size === 0) throw new CheckpointError(join(path, ADAPTER_WEIGHTS), 'holds no LoRA matrices');
  for (const name of saved.keys()) if (targets.has(name)) throw new CheckpointError(saved.get(name)!.file, `is both adapted (LoRA) and saved whole (modules_to_save)`, name);
  return { path, rank: rank as number, scale, targets, saved };
}

/**
 * The model an adapter makes of its base, as a checkpoint: the base's tensors, the modules_to_save
 * copies in their place (or added), and — when the adapter directory has a config.json of its own
 * (the adapted model's) — that directory as where config.json is read. The LoRA updates themselves
 * are added as each tensor is read (`adapter.targets`).
 */
export function adaptedCheckpoint(base: Checkpoint, adapter: LoraAdapter, label: string): Checkpoint {
  const tensors = new Map(base.tensors);
  const names = [...base.names];
  for (const [name, location] of adapter.saved) {
    if (!tensors.has(name)) names.push(name);
    tensors.set(name, location);
  }
  return { ...base, path: label, directory: configDirectory(adapter.path, base.directory), names, tensors };
}

/** Where an adapted model's config.json is read: the adapter's own (the adapted model's), else its base's. */
export function configDirectory(adapterPath: string, baseDirectory: string): string {
  return existsSync(join(adapterPath, 'config.json')) ? adapterPath : baseDirectory;
}

/** Checks every adapted module against the base it will be added to: the tensor exists, and B·A has its shape; a saved module replacing a base tensor has its shape. */
export function checkAdapterFits(adapter: LoraAdapter, base: Checkpoint): void {
  for (const [name, location] of adapter.saved) {
    const tensor = base.tensors.get(name);
    if (tensor && JSON.stringify(tensor.shape) !== JSON.stringify(location.shape)) {
      throw new CheckpointError(location.file, `is saved whole (modules_to_save) as ${JSON.stringify(location.shape)}, but "${name}" of ${base.path} is ${JSON.stringify(tensor.shape)}`, location.name);
    }
  }
  for (const [name, target] of adapter.targets) {
    const tensor = base.tensors.get(name);
    if (!tensor) throw new CheckpointError(target.a.file, `adapts "${name}", which ${base.path} does not have`, target.a.name);
    const rows = target.b.shape[0];
    const columns = target.a.shape[1];
    const shape = target.transpose ? [columns, rows] : [rows, columns];
    if (tensor.shape.length !== 2 || tensor.shape[0] !== shape[0] || tensor.shape[1] !== shape[1]) {
      throw new CheckpointError(target.a.file, `B·A${target.transpose ? ' transposed' : ''} is ${JSON.stringify(shape)}, but "${name}" of ${base.path} is ${JSON.stringify(tensor.shape)}`, target.a.name);
    }
  }
}

/** values (the base tensor, [rows, columns] row-major) += scale · B·A, or its transpose; float64 sums. */
export function addLowRank(values: Float32Array, a: Float32Array, b: Float32Array, rank: number, scale: number, transpose: boolean, columnsOfA: number): void {
  const rowsOfB = b.length / rank;
  const row = new Float64Array(columnsOfA);
  for (let o = 0; o < rowsOfB; o++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const weight = b[o * rank + k];
      if (weight === 0) continue;
      const offset = k * columnsOfA;
      for (let i = 0; i < columnsOfA; i++) row[i] += weight * a[offset + i];
    }
    if (transpose) for (let i = 0; i < columnsOfA; i++) values[i * rowsOfB + o] += scale * row[i];
    else for (let i = 0; i < columnsOfA; i++) values[o * columnsOfA + i] += scale * row[i];
  }
}
