/**
 * Running a planned merge: tensors are merged on the pool and written in order as they arrive,
 * with at most a few tensors in flight, so peak memory is bounded by a few tensors whatever the
 * checkpoint's size. Output is staged beside the target, fsynced and renamed into place; on any
 * failure the staging directory is removed and nothing is left behind.
 */
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { createStagingDirectory, outputDirectoryProblem, publishDirectory } from '../checkpoint/files';
import { CheckpointWriter, fsyncFile, WrittenFile } from '../checkpoint/writer';
import { AbortError, MergeInputError, writingTo } from '../errors';
import { ProgressCallback, ProgressTracker } from '../progress';
import { modelCard } from './model-card';
import { withVocabSize } from './embeddings';
import { runnableReference } from '../checkpoint/lora';
import { TOKENIZER_FILES } from '../vocabulary/tokenizer-json';
import { tokenizerFiles } from '../vocabulary/output-files';
import { MergePlan } from './plan';
import { BackendChoice, defaultBackend } from '../backend-choice';
import { mergeKernelsFor } from '../gpu/merge-device';
import { DeviceReport, GpuTensorRunner } from './gpu-runner';
import { defaultThreadCount, TensorPool } from './pool';
import { NonFiniteWarning, TensorResult } from './tensor-job';

export const CONFIG_COPY_NAME = 'mergekit_config.yml';

export interface RunOptions {
  /** Worker threads; 0 runs inline. Default: one per core. */
  threads?: number;
  overwrite?: boolean;
  maxShardBytes?: number;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** webgpu: tensors merge on the GPU where their method has kernels; wasm/cpu: on the CPU; auto (default, or APL_MERGE_BACKEND): the GPU when the machine has one. Also the APL preparation's backend. */
  backend?: BackendChoice;
  /** Called when every file is written, just before the output is renamed into place: a throw keeps it unpublished (its staging is removed). */
  beforePublish?: () => Promise<void>;
}

export interface MergeResult {
  outDir: string;
  method: string;
  seed: number;
  tensors: number;
  parameters: number;
  files: WrittenFile[];
  /** sha256 of the single model.safetensors, or of the index for sharded output. */
  sha256: string;
  warnings: NonFiniteWarning[];
  seconds: number;
  inputBytes: number;
  outputBytes: number;
  /** What a data-aware method's preparation used (APL: importance sources, backend). */
  preparation?: Record<string, unknown>;
  /** Where the tensors were merged. */
  device: DeviceReport;
}

/** Runs a data-aware method's preparation and attaches its per-row parameters to the jobs. */
async function prepare(plan: MergePlan, options: RunOptions): Promise<Record<string, unknown> | undefined> {
  const method = plan.config.method;
  const first = plan.jobs.find((j) => j.kind === 'merge');
  if (!method.prepare || !first) return undefined;
  const prepared = await method.prepare({
    baseModel: plan.config.baseModel,
    models: plan.config.models.map((m) => runnableReference(m.model, m.lora, plan.config.baseModel)),
    global: first.globalParameters,
    perModel: first.modelParameters,
    seed: plan.config.seed,
    onProgress: options.onProgress,
    signal: options.signal,
    backend: options.backend,
  });
  for (const job of plan.jobs) {
    if (job.kind === 'merge') job.rowParameters = prepared.rowParameters.get(job.name);
  }
  return prepared.report;
}

/** The config as written beside the output: the user's text, with the seed made explicit. */
function configCopy(plan: MergePlan): string {
  if (plan.config.seedGiven || !plan.config.method.stochastic) return plan.config.text;
  const doc = parseDocument(plan.config.text);
  doc.set('seed', plan.config.seed);
  return doc.toString();
}

export async function runMerge(plan: MergePlan, outDir: string, options: RunOptions = {}): Promise<MergeResult> {
  const started = Date.now();
  const problem = outputDirectoryProblem(outDir, options.overwrite ?? false);
  if (problem) throw new MergeInputError(problem);
  if (options.signal?.aborted) throw new AbortError();
  // Before the preparation, so that asking for a GPU that is not there fails at once.
  const kernels = await mergeKernelsFor(options.backend ?? defaultBackend());
  const preparation = await prepare(plan, options);
  const staging = createStagingDirectory(outDir);
  const writer = new CheckpointWriter(staging, plan.specs, { maxShardBytes: options.maxShardBytes, metadata: plan.metadata });
  const threads = new TensorPool(options.threads ?? defaultThreadCount());
  const pool = kernels ? new GpuTensorRunner(kernels, threads) : threads;
  const progress = new ProgressTracker('merge', plan.jobs.length, options.onProgress);
  const warnings: NonFiniteWarning[] = [];
  try {
    // A window of in-flight tensors keeps every thread busy while bounding memory.
    const window = pool.window;
    const inFlight = new Map<number, Promise<TensorResult>>();
    let nextToStart = 0;
    progress.report(0, 'starting');
    for (let index = 0; index < plan.jobs.length; index++) {
      while (nextToStart < plan.jobs.length && nextToStart < index + window) {
        const promise = pool.run(plan.jobs[nextToStart]);
        promise.catch(() => undefined); // awaited below in order; avoid unhandled rejections meanwhile
        inFlight.set(nextToStart, promise);
        nextToStart++;
      }
      const result = await inFlight.get(index)!;
      inFlight.delete(index);
      if (options.signal?.aborted) throw new AbortError();
      writer.write(plan.jobs[index].name, result.bytes);
      pool.recycle(result.bytes);
      warnings.push(...result.warnings);
      progress.report(index + 1, plan.jobs[index].name);
    }
    const files = writer.finish();
    const configText = configCopy(plan);
    const writeText = (name: string, text: string | Uint8Array) =>
      writingTo(join(staging, name), () => {
        writeFileSync(join(staging, name), text);
        fsyncFile(join(staging, name));
      });
    writeText(CONFIG_COPY_NAME, configText);
    const copy = (from: string, name: string) =>
      writingTo(join(staging, name), () => {
        copyFileSync(from, join(staging, name));
        fsyncFile(join(staging, name));
      });
    // As mergekit: the base's config.json (or the first model's), and its tokenizer unless tokenizer_source builds one.
    const reference = plan.base ?? plan.models[0];
    const referenceConfig = reference ? join(reference.directory, 'config.json') : undefined;
    const outputConfig = plan.outputConfig ?? (referenceConfig && existsSync(referenceConfig) ? (JSON.parse(readFileSync(referenceConfig, 'utf8')) as Record<string, unknown>) : undefined);
    if (outputConfig && plan.vocabulary) {
      writeText('config.json', JSON.stringify(withVocabSize(outputConfig, plan.vocabulary), null, 2) + '\n');
    } else if (plan.outputConfig) {
      writeText('config.json', JSON.stringify(plan.outputConfig, null, 2) + '\n');
    } else if (referenceConfig && existsSync(referenceConfig)) {
      copy(referenceConfig, 'config.json');
    }
    if (plan.vocabulary) {
      for (const [name, text] of tokenizerFiles(plan.vocabulary)) writeText(name, text);
    } else if (reference) {
      for (const name of TOKENIZER_FILES) if (existsSync(join(reference.directory, name))) copy(join(reference.directory, name), name);
    }
    writeText('README.md', modelCard(plan, configText));
    await options.beforePublish?.();
    publishDirectory(staging, outDir, options.overwrite ?? false);
    const parameters = plan.specs.reduce((acc, s) => acc + s.shape.reduce((a, b) => a * b, 1), 0);
    return {
      outDir,
      method: plan.config.method.name,
      seed: plan.config.seed,
      tensors: plan.specs.length,
      parameters,
      files,
      sha256: files.length === 1 ? files[0].sha256 : files[files.length - 1].sha256,
      warnings,
      seconds: (Date.now() - started) / 1000,
      inputBytes: plan.inputBytes,
      outputBytes: plan.outputBytes,
      preparation,
      device: pool instanceof GpuTensorRunner ? pool.deviceReport() : { gpuTensors: 0, cpuTensors: plan.jobs.length, cpuReasons: [] },
    };
  } catch (err) {
    writer.abort();
    rmSync(staging, { recursive: true, force: true });
    throw err;
  } finally {
    await pool.close();
  }
}
