/**
 * A model on disk: a checkpoint plus a config.json naming its family (`apl_family`) and sizes.
 * Loading reads every tensor (these models are small enough for forward passes in memory) and
 * checks that the checkpoint has exactly the tensors and shapes the family expects.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { openCheckpoint, TensorReader } from '../checkpoint/checkpoint';
import { decodeToFloat32, FloatDtype, isFloatDtype } from '../checkpoint/dtype';
import { createStagingDirectory, publishDirectory } from '../checkpoint/files';
import { CheckpointWriter, fsyncFile } from '../checkpoint/writer';
import { CheckpointError } from '../errors';
import { adaptedCheckpoint, addLowRank, checkAdapterFits, configDirectory, LoraAdapter, readLoraAdapter, splitModelReference } from '../checkpoint/lora';
import { familyForConfig, isKnownModelType, knownModelTypes } from './registry';
import { FamilyConfig, ModelFamily, ParamLookup } from './types';

export interface Model {
  path: string;
  family: ModelFamily<FamilyConfig>;
  config: FamilyConfig;
  params: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
}

/** An in-memory model from a family, its config and parameter values (shapes from the family). */
export function modelOf<C extends FamilyConfig>(family: ModelFamily<C>, config: C, params: Map<string, Float32Array>, path = ''): Model {
  const shapes = new Map<string, number[]>();
  for (const { name, shape } of [...family.trunkShapes(config), ...Object.keys(config.tasks).flatMap((t) => family.headShapes(config, t))]) shapes.set(name, shape);
  return { path, family: family as unknown as ModelFamily<FamilyConfig>, config, params, shapes };
}

export function readModelConfig(directory: string): { family: ModelFamily<FamilyConfig>; config: FamilyConfig } {
  const file = join(directory, 'config.json');
  if (!existsSync(file)) throw new Error(`${directory}: no config.json, so the model family is unknown`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const family = familyForConfig(json, file);
  return { family, config: family.parseConfig(json, file) };
}

/**
 * Like readModelConfig, but a checkpoint of no family the engine knows (no config.json, or an
 * architecture it has no model function for) is an answer, not an error: such checkpoints can be
 * merged, just not run. A config.json that is broken, or wrong for a known family, still throws.
 */
export function modelFamilyOf(directory: string): { family: ModelFamily<FamilyConfig>; config: FamilyConfig } | { unknown: string } {
  const file = join(directory, 'config.json');
  if (!existsSync(file)) return { unknown: 'no config.json, so the model family is unknown' };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof json.apl_family !== 'string' && !isKnownModelType(json.model_type)) {
    return { unknown: `model_type ${JSON.stringify(json.model_type ?? null)} is not a family the engine runs (${knownModelTypes().join(', ')})` };
  }
  const family = familyForConfig(json, file);
  return { family, config: family.parseConfig(json, file) };
}

/** The family of a model reference (a checkpoint, or MODEL+ADAPTER: an adapter runs as the model it adapts). */
export function modelFamilyOfReference(reference: string): ReturnType<typeof modelFamilyOf> {
  const { checkpoint, adapter } = splitModelReference(reference);
  const directory = openCheckpoint(checkpoint).directory;
  return modelFamilyOf(adapter ? configDirectory(adapter, directory) : directory);
}

/**
 * Loads a model: a checkpoint, or mergekit's MODEL+ADAPTER — the checkpoint with a LoRA adapter's
 * scale · B·A added to each module it adapts (checked to fit, module by module, first).
 */
export function loadModel(path: string): Model {
  const { checkpoint: checkpointPath, adapter: adapterPath } = splitModelReference(path);
  const adapter = adapterPath ? readLoraAdapter(adapterPath) : undefined;
  const base = openCheckpoint(checkpointPath);
  if (adapter) checkAdapterFits(adapter, base);
  const checkpoint = adapter ? adaptedCheckpoint(base, adapter, path) : base;
  const { family, config } = readModelConfig(checkpoint.directory);
  const expected = [...family.trunkShapes(config), ...Object.keys(config.tasks).flatMap((t) => family.headShapes(config, t))];
  checkFitsInMemory(expected, checkpoint.directory);
  const params = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const reader = new TensorReader();
  try {
    for (const { name, shape } of expected) {
      const location = checkpoint.tensors.get(name);
      if (!location) throw new CheckpointError(checkpoint.path, `missing: the ${family.name} config expects it`, name);
      if (JSON.stringify(location.shape) !== JSON.stringify(shape)) {
        throw new CheckpointError(location.file, `shape ${JSON.stringify(location.shape)} but the config implies ${JSON.stringify(shape)}`, name);
      }
      if (!isFloatDtype(location.dtype)) throw new CheckpointError(location.file, `dtype ${location.dtype} is not a float type`, name);
      // read() returns a fresh buffer, so the decoded array (a view of it for F32) is the model's own.
      params.set(name, decodeToFloat32(reader.read(location), location.dtype as FloatDtype));
      shapes.set(name, shape);
    }
    if (adapter) addAdapterUpdates(params, adapter, reader, family.name);
  } finally {
    reader.close();
  }
  // Integer buffers Hugging Face may save alongside the weights (position_ids) are not parameters.
  // An adapted model runs on its base, whose other tensors (the base's own heads) it does not use.
  const extra = adapter ? [] : checkpoint.names.filter((n) => !params.has(n) && isFloatDtype(checkpoint.tensors.get(n)!.dtype));
  if (extra.length > 0) throw new CheckpointError(checkpoint.path, `tensors the ${family.name} config does not describe: ${extra.slice(0, 5).join(', ')}`);
  return { path, family, config, params, shapes };
}

/**
 * A model is held in float32 to be run; one whose weights would take more than half of this
 * machine's memory is refused before anything is allocated (scoring needs room for activations
 * and a second model besides), instead of failing part-way with an out-of-memory crash.
 */
function checkFitsInMemory(shapes: readonly { shape: number[] }[], directory: string): void {
  const bytes = shapes.reduce((sum, { shape }) => sum + 4 * shape.reduce((a, b) => a * b, 1), 0);
  const limit = totalmem() / 2;
  if (bytes > limit) {
    const gib = (n: number) => (n / 1024 ** 3).toFixed(1);
    throw new Error(`${directory}: running this model needs ${gib(bytes)} GiB of float32 weights, more than half of this machine's ${gib(totalmem())} GiB of memory; it can be merged (tensor by tensor) but not scored here`);
  }
}

/** params (the base's) += scale · B·A for each module the adapter adapts. */
function addAdapterUpdates(params: Map<string, Float32Array>, adapter: LoraAdapter, reader: TensorReader, familyName: string): void {
  for (const [name, target] of adapter.targets) {
    const values = params.get(name);
    if (!values) throw new CheckpointError(target.a.file, `adapts "${name}", which the ${familyName} model does not use`, target.a.name);
    const [a, b] = [target.a, target.b].map((m) => decodeToFloat32(reader.read(m), m.dtype as FloatDtype));
    addLowRank(values, a, b, adapter.rank, target.scale, target.transpose, target.a.shape[1]);
  }
}

/** Writes a model directory atomically (staging, fsync, rename). */
export function saveModel(directory: string, model: Omit<Model, 'path'>, metadata: Record<string, string> = {}): void {
  const staging = createStagingDirectory(directory);
  try {
    const specs = [...model.params.keys()].map((name) => ({ name, dtype: 'F32' as const, shape: model.shapes.get(name)! }));
    const writer = new CheckpointWriter(staging, specs, { metadata: { format: 'pt', ...metadata } });
    for (const spec of specs) {
      const values = model.params.get(spec.name)!;
      writer.write(spec.name, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
    writer.finish();
    writeFileSync(join(staging, 'config.json'), JSON.stringify(model.family.configJson(model.config), null, 2) + '\n');
    fsyncFile(join(staging, 'config.json'));
    mkdirSync(join(directory, '..'), { recursive: true });
    publishDirectory(staging, directory, true);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/** Parameters as tf tensors (owned by the caller: dispose them), and a lookup over them. */
export function toTensors(model: Pick<Model, 'params' | 'shapes'>, names: Iterable<string> = model.params.keys()): { tensors: Map<string, tf.Tensor>; lookup: ParamLookup } {
  const tensors = new Map<string, tf.Tensor>();
  for (const name of names) tensors.set(name, tf.tensor(model.params.get(name)!, model.shapes.get(name)!));
  const lookup: ParamLookup = (name) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`parameter "${name}" is not loaded`);
    return t;
  };
  return { tensors, lookup };
}
