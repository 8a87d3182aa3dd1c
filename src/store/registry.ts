/**
 * The registry's writes and reads that the API and the workers share: registering checkpoints as
 * models (path checked against the configured data roots, header validated and hashed before any
 * row is written, all rows in one transaction), tasks, and paged model listings.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { inspectCheckpoint } from '../engine/checkpoint/inspect';
import { INDEX_FILE_NAME, openCheckpoint, SINGLE_FILE_NAME } from '../engine/checkpoint/checkpoint';
import { ADAPTER_WEIGHTS, checkAdapterFits, isLoraAdapter, readLoraAdapter } from '../engine/checkpoint/lora';
import { sha256FileAsync } from '../engine/checkpoint/files';
import { lmTaskTokenizerPath } from '../engine/data/lm-tasks';
import { hasTokenLabels, loadTaskData } from '../engine/data/task-data';
import { Model, Prisma, PrismaClient } from './generated/client';
import { ModelKind } from './generated/enums';
import { DATA_URI_SCHEME, DataRoot, locateInRoots, pathFromRequest } from './data-roots';
import { RegistryError } from './registry-error';
import { descendants } from './lineage';
import { pageOf, PageRequest } from './paging';
import { batchKey, turnBatcher } from './batching';

export { RegistryError };

/** What a registration may read: a checkpoint (`.safetensors` file, or a directory holding one or a shard index) or task data. */
export type RegisteredFile = 'checkpoint' | 'task data' | 'tokenizer';

function looksLike(path: string, what: RegisteredFile): boolean {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return false;
  }
  if (what === 'tokenizer') return stat.isFile() ? path.endsWith('.json') : existsSync(join(path, 'tokenizer.json'));
  if (stat.isFile()) return path.endsWith('.safetensors') || (what === 'checkpoint' && path.endsWith('.safetensors.index.json')) || (what === 'task data' && path.endsWith('.jsonl'));
  return what === 'checkpoint' && stat.isDirectory() && (existsSync(join(path, SINGLE_FILE_NAME)) || existsSync(join(path, INDEX_FILE_NAME)) || existsSync(join(path, ADAPTER_WEIGHTS)));
}

/**
 * Resolves a path (absolute, or `data://ROOT/relative`) and checks it lies under one of the data
 * roots (symlinks followed) and looks like what is being registered, before anything is opened.
 * With `precise` false (callers who may not see the server's files) a path that does not exist,
 * lies outside the roots or is not a checkpoint all get the same error, so registration cannot be
 * used to probe the server's file system.
 */
export function pathUnderRoots(path: string, roots: readonly DataRoot[], what: RegisteredFile = 'checkpoint', precise = true): string {
  const vague = () => new RegistryError('BAD_USER_INPUT', `no ${what} at "${path}" in the data roots (${roots.map((r) => DATA_URI_SCHEME + r.name).join(', ')})`);
  const requested = pathFromRequest(path, roots);
  if (!isAbsolute(requested)) throw new RegistryError('BAD_USER_INPUT', `path "${path}" must be absolute or data://ROOT/relative/path`);
  let real: string;
  try {
    real = realpathSync(requested);
  } catch {
    throw precise ? new RegistryError('NOT_FOUND', `path "${path}" does not exist`) : vague();
  }
  if (!locateInRoots(real, roots)) throw precise ? new RegistryError('FORBIDDEN', `path "${path}" is outside the configured data roots (${roots.map((r) => r.path).join(', ')})`) : vague();
  if (!looksLike(real, what)) {
    const expected = { checkpoint: 'a checkpoint (a .safetensors file, or a directory with model.safetensors, model.safetensors.index.json or a LoRA adapter)', 'task data': "task data (a .safetensors file, or a language-model task's .jsonl)", tokenizer: 'a tokenizer (a tokenizer.json, or a directory holding one)' }[what];
    throw precise ? new RegistryError('BAD_USER_INPUT', `path "${path}" is not ${expected}`) : vague();
  }
  return real;
}

/** Model and task names: what listings, lineage and `model:` lines show. */
export function checkName(what: string, name: string): void {
  if (name.trim() === '') throw new RegistryError('BAD_USER_INPUT', `${what} must not be empty`);
  if (name.length > 200) throw new RegistryError('BAD_USER_INPUT', `${what} is ${name.length} characters long; at most 200`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new RegistryError('BAD_USER_INPUT', `${what} ${JSON.stringify(name)} contains a control character`);
  if (name !== name.trim()) throw new RegistryError('BAD_USER_INPUT', `${what} ${JSON.stringify(name)} begins or ends with white space`);
}

/** Runs a write, turning a unique-constraint violation into a CONFLICT that names what exists. */
export async function uniquely<T>(what: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') throw new RegistryError('CONFLICT', `${what} already exists`);
    throw err;
  }
}

export interface RegisterModelInput {
  name: string;
  kind: ModelKind;
  path: string;
  /** For fine-tunes: the base (or other parent) they were derived from. */
  parentIds?: string[];
  relation?: string;
}

/** What the registry records of a checkpoint, read from its headers (and hashed) before any row is written. */
export interface CheckpointRecord {
  uri: string;
  sha256: string;
  bytes: bigint;
  dtype: string;
  parameterCount: bigint;
  tensorCount: number;
  architecture: string;
}

/**
 * Validates and hashes a checkpoint (a file or an HF directory); a bad one is BAD_USER_INPUT naming
 * the problem. `knownHashes` (file name → sha256, e.g. what the writer computed on the way out)
 * spares reading those files again. Hashing reads every byte: it runs on libuv's thread pool a
 * chunk at a time, so a server registering a 10 GB checkpoint keeps answering other requests.
 */
export async function describeCheckpoint(path: string, knownHashes: ReadonlyMap<string, string> = new Map()): Promise<CheckpointRecord> {
  let report: ReturnType<typeof inspectCheckpoint>;
  let architecture = 'unknown';
  try {
    // A LoRA adapter is recorded by its weights file (its config validated first).
    const adapter = isLoraAdapter(path) ? readLoraAdapter(path) : undefined;
    const weights = adapter ? join(path, ADAPTER_WEIGHTS) : path;
    if (adapter) architecture = `lora (r ${adapter.rank})`;
    const checkpoint = openCheckpoint(weights);
    report = inspectCheckpoint(weights, { hash: false });
    // report.files lists checkpoint.shards in order.
    for (const [i, shard] of checkpoint.shards.entries()) report.files[i].sha256 = knownHashes.get(report.files[i].name) ?? (await sha256FileAsync(shard.file));
    const configPath = resolve(checkpoint.directory, 'config.json');
    if (!adapter) try {
      const json = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      architecture = String(json.apl_family ?? json.model_type ?? (Array.isArray(json.architectures) ? json.architectures[0] : 'unknown'));
    } catch {
      // no or unreadable config.json: architecture stays unknown
    }
  } catch (err) {
    throw new RegistryError('BAD_USER_INPUT', (err as Error).message);
  }
  const dtypes = Object.keys(report.dtypes);
  return {
    uri: `file://${path}`,
    sha256: report.files.length === 1 ? report.files[0].sha256! : report.files.map((f) => f.sha256).join(','),
    bytes: BigInt(report.files.reduce((a, f) => a + f.bytes, 0)),
    dtype: dtypes.length === 1 ? dtypes[0] : dtypes.join('+'),
    parameterCount: BigInt(report.parameterCount),
    tensorCount: report.tensors.length,
    architecture,
  };
}

/** The file path of a checkpoint's `file://` uri. */
export function checkpointPath(uri: string): string {
  if (!uri.startsWith('file://')) throw new RegistryError('BAD_USER_INPUT', `checkpoint uri "${uri}" is not a file:// uri`);
  return uri.slice('file://'.length);
}

export interface ParentLink {
  id: string;
  relation: string;
  weight?: number | null;
}

/** Writes a model, its checkpoint and its lineage edges inside the caller's transaction. */
export async function insertModel(tx: Prisma.TransactionClient, model: { name: string; kind: ModelKind; createdBy?: string | null }, record: CheckpointRecord, parents: readonly ParentLink[]) {
  const ids = [...new Set(parents.map((p) => p.id))];
  const found = await tx.model.findMany({ where: { id: { in: ids } }, select: { id: true } });
  const missing = ids.filter((id) => !found.some((p) => p.id === id));
  if (missing.length > 0) throw new RegistryError('NOT_FOUND', `parent model(s) ${missing.join(', ')} do not exist`);
  const { architecture, ...checkpointData } = record;
  const checkpoint = await tx.checkpoint.create({ data: checkpointData });
  const created = await tx.model.create({ data: { name: model.name, kind: model.kind, architecture, checkpointId: checkpoint.id, createdBy: model.createdBy ?? null } });
  for (const parent of parents) {
    await tx.lineageEdge.create({ data: { parentId: parent.id, childId: created.id, relation: parent.relation, weight: parent.weight ?? null } });
  }
  return created;
}

/** Who is registering: the token's name (recorded), and whether errors may name the server's paths. */
export interface Registrant {
  createdBy?: string | null;
  precisePathErrors?: boolean;
}

/**
 * Validates and registers a checkpoint as a model; `andThen` runs in the same transaction once the
 * model is written (the jobs layer queues its evaluation there, so both happen or neither does).
 */
export async function registerModel(prisma: PrismaClient, roots: readonly DataRoot[], input: RegisterModelInput, by: Registrant = {}, andThen?: (tx: Prisma.TransactionClient, model: Model) => Promise<void>) {
  checkName('name', input.name);
  const parentIds = input.parentIds ?? [];
  const twice = parentIds.find((id, i) => parentIds.indexOf(id) !== i);
  if (twice) throw new RegistryError('BAD_USER_INPUT', `parentIds: ${twice} is listed twice`);
  if (input.kind === 'FINETUNE' && parentIds.length === 0) throw new RegistryError('BAD_USER_INPUT', 'a fine-tune needs parentIds (its base model)');
  if (input.kind === 'MERGE' && parentIds.length === 0) throw new RegistryError('BAD_USER_INPUT', 'a merge needs parentIds (the models it was merged from)');
  if (input.kind === 'BASE' && parentIds.length > 0) throw new RegistryError('BAD_USER_INPUT', 'a base model has no parents');
  const path = pathUnderRoots(input.path, roots, 'checkpoint', by.precisePathErrors ?? true);
  const record = await describeCheckpoint(path);
  if (record.tensorCount === 0) throw new RegistryError('BAD_USER_INPUT', `${input.path}: the checkpoint holds no tensors`);
  if (isLoraAdapter(path)) await checkAdapterParent(prisma, input, path, parentIds);
  else if (input.kind === 'FINETUNE') await checkHomologous(prisma, path, parentIds);
  const relation = input.relation ?? (input.kind === 'MERGE' ? 'merge' : 'finetune');
  return uniquely(`a model named "${input.name}"`, () =>
    prisma.$transaction(async (tx) => {
      const model = await insertModel(tx, { ...input, createdBy: by.createdBy }, record, parentIds.map((id) => ({ id, relation })));
      await andThen?.(tx, model);
      return model;
    }),
  );
}

/** A LoRA adapter is a FINETUNE of exactly one model, the one it adapts, and must fit it module by module. */
async function checkAdapterParent(prisma: PrismaClient, input: RegisterModelInput, path: string, parentIds: readonly string[]): Promise<void> {
  if (input.kind !== 'FINETUNE' || parentIds.length !== 1) {
    throw new RegistryError('BAD_USER_INPUT', `${input.path} is a LoRA adapter: register it as a FINETUNE whose one parent is the model it adapts`);
  }
  const parent = await prisma.model.findUnique({ where: { id: parentIds[0] }, include: { checkpoint: true } });
  if (!parent) return; // insertModel names the missing parent
  try {
    checkAdapterFits(readLoraAdapter(path), openCheckpoint(checkpointPath(parent.checkpoint.uri)));
  } catch (err) {
    throw new RegistryError('BAD_USER_INPUT', `not an adapter of "${parent.name}": ${(err as Error).message}`);
  }
}

/**
 * A fine-tune is homologous with its parent: they share tensors, and every tensor both have is of
 * one shape (heads may differ: a fine-tune drops the pretraining head and adds its task's).
 * Checked from the headers alone.
 */
async function checkHomologous(prisma: PrismaClient, path: string, parentIds: readonly string[]): Promise<void> {
  const mine = openCheckpoint(path).tensors;
  for (const parentId of parentIds) {
    const parent = await prisma.model.findUnique({ where: { id: parentId }, include: { checkpoint: true } });
    if (!parent) continue; // insertModel names the missing parents
    let theirs: ReturnType<typeof openCheckpoint>['tensors'];
    try {
      theirs = openCheckpoint(checkpointPath(parent.checkpoint.uri)).tensors;
    } catch (err) {
      throw new RegistryError('BAD_USER_INPUT', `the parent "${parent.name}" cannot be read to compare with: ${(err as Error).message}`);
    }
    const shared = [...theirs.keys()].filter((name) => mine.has(name));
    if (shared.length === 0) throw new RegistryError('BAD_USER_INPUT', `not a fine-tune of "${parent.name}": the two checkpoints share no tensor name`);
    for (const name of shared) {
      const own = mine.get(name)!;
      const tensor = theirs.get(name)!;
      if (JSON.stringify(own.shape) !== JSON.stringify(tensor.shape)) {
        throw new RegistryError('BAD_USER_INPUT', `not a fine-tune of "${parent.name}": tensor "${name}" has shape ${JSON.stringify(own.shape)}, the parent's ${JSON.stringify(tensor.shape)}`);
      }
    }
  }
}

/** A model by id, or null when there is none; lookups made in one turn of the event loop share one statement. */
export async function findModel(prisma: PrismaClient, id: string): Promise<Model | null> {
  let key: string;
  try {
    key = batchKey(id, 'model');
  } catch {
    return null;
  }
  const loader = turnBatcher<string, Model | null>(prisma, 'model-by-id', async (ids) => {
    const found = new Map((await prisma.model.findMany({ where: { id: { in: [...ids] } } })).map((m) => [m.id, m]));
    return ids.map((i) => found.get(i) ?? null);
  });
  return loader.load(key);
}

export interface ModelFilter {
  kind?: ModelKind;
  nameContains?: string;
  architecture?: string;
  /** Models with every one of these tags. */
  tags?: string[];
  /** Archived models are left out unless this is true. */
  includeArchived?: boolean;
  /** The base and every model below it. */
  baseId?: string;
  /** Registered by this token's name. */
  createdBy?: string;
}

export type ModelOrderField = 'createdAt' | 'name';

/** Models a page at a time, in creation order (or by name); `after` is the id of the last model of the previous page. */
export async function listModels(prisma: PrismaClient, filter: ModelFilter, request: PageRequest<ModelOrderField>) {
  const inLineage = filter.baseId ? [filter.baseId, ...(await descendants(prisma, filter.baseId, 64)).map((n) => n.id)] : undefined;
  const where: Prisma.ModelWhereInput = {
    kind: filter.kind,
    architecture: filter.architecture,
    createdBy: filter.createdBy,
    name: filter.nameContains ? { contains: filter.nameContains, mode: 'insensitive' } : undefined,
    ...(filter.tags && filter.tags.length > 0 ? { tags: { hasEvery: filter.tags } } : {}),
    ...(filter.includeArchived ? {} : { archivedAt: null }),
    ...(inLineage ? { id: { in: inLineage } } : {}),
  };
  return pageOf(
    { find: (args) => prisma.model.findMany({ where, ...args }), count: () => prisma.model.count({ where }), exists: async (id) => (await prisma.model.count({ where: { id } })) > 0 },
    request,
    { field: 'createdAt', direction: 'asc' },
    'model',
  );
}

export type TaskOrderField = 'createdAt' | 'name';

/** Tasks a page at a time, by name (or creation). */
export async function listTasks(prisma: PrismaClient, filter: { nameContains?: string }, request: PageRequest<TaskOrderField>) {
  const where: Prisma.TaskWhereInput = filter.nameContains ? { name: { contains: filter.nameContains, mode: 'insensitive' } } : {};
  return pageOf(
    { find: (args) => prisma.task.findMany({ where, ...args }), count: () => prisma.task.count({ where }), exists: async (id) => (await prisma.task.count({ where: { id } })) > 0 },
    request,
    { field: 'name', direction: 'asc' },
    'task',
  );
}

export interface RegisterTaskInput {
  name: string;
  /** Task data (safetensors with probe/validation/test/ood splits), under a data root. */
  path: string;
}

/** Registers a task from its data file; the file is validated (splits, labels within classes) first. */
export async function registerTask(prisma: PrismaClient, roots: readonly DataRoot[], input: RegisterTaskInput, by: Registrant = {}) {
  checkName('name', input.name);
  const path = pathUnderRoots(input.path, roots, 'task data', by.precisePathErrors ?? true);
  let data: ReturnType<typeof loadTaskData>;
  try {
    // The tokenizer a JSONL task names is read too: it must lie under the data roots as well.
    const tokenizer = lmTaskTokenizerPath(path);
    if (tokenizer !== undefined) pathUnderRoots(tokenizer, roots, 'tokenizer', by.precisePathErrors ?? true);
    data = loadTaskData(path);
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    throw new RegistryError('BAD_USER_INPUT', (err as Error).message);
  }
  if (!data.splits.has('probe')) throw new RegistryError('BAD_USER_INPUT', `${path}: has no "probe" split, which importance analyses need`);
  return uniquely(`a task named "${input.name}"`, () =>
    prisma.task.create({ data: { name: input.name, kind: hasTokenLabels(data) ? 'LANGUAGE_MODEL' : 'CLASSIFICATION', classes: data.classes, description: data.description, dataUri: `file://${path}`, createdBy: by.createdBy ?? null } }),
  );
}
