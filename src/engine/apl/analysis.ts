/**
 * One importance analysis, as the CLI's `importance` command and the platform's analysis jobs run
 * it: a fine-tune against its base on a task's probe split, by exact intervention (loss increase
 * and KL), by the gradient approximation (signed and absolute), or both, saved as an artifact.
 */
import { getSplit, loadTaskData } from '../data/task-data';
import { loadModel } from '../families/model';
import { ProgressCallback } from '../progress';
import { ScoreName } from './artifact';
import { exactImportance, gradientImportance } from './importance';
import { PartitionLevel, PartitionScheme } from './partitions';
import { partitionsOf } from './prepare';
import { singleTask } from '../data-aware/probe-inputs';

export interface AnalysisInputs {
  basePath: string;
  modelPath: string;
  probePath: string;
  /** The head to measure; may be omitted when the model has one. */
  task?: string;
  level: PartitionLevel;
  estimator: 'exact' | 'gradient' | 'both';
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface Analysis {
  task: string;
  scheme: PartitionScheme;
  probeExamples: number;
  scores: Partial<Record<ScoreName, Float64Array>>;
  exactSeconds?: number;
  gradientSeconds?: number;
  cleanLoss?: number;
  /** Partitions scored zero without running them: table rows the probe set never reads, rows the fine-tune left unchanged. */
  unreadPartitions?: number;
  unchangedPartitions?: number;
  /** What the GPU's own WGSL kernels computed (on WebGPU): exact partitions scored, and the gradient. */
  wgslKernels: { exactPartitions: number; gradient: boolean };
}

/** The analysis's use of WGSL kernels as artifact metadata (nothing when they did not run). */
export function wgslKernelMetadata(analysis: Analysis): Record<string, string> {
  const { exactPartitions, gradient } = analysis.wgslKernels;
  if (exactPartitions === 0 && !gradient) return {};
  return { wgsl_exact_partitions: String(exactPartitions), wgsl_gradient: String(gradient) };
}

export async function analyseImportance(inputs: AnalysisInputs): Promise<Analysis> {
  const base = loadModel(inputs.basePath);
  const finetune = loadModel(inputs.modelPath);
  const task = singleTask(finetune, inputs.task);
  const probe = getSplit(loadTaskData(inputs.probePath), 'probe');
  const scheme = partitionsOf(inputs.level, finetune);
  const importanceInputs = { base, finetune, task, probe, scheme };
  const analysis: Analysis = { task, scheme, probeExamples: probe.count, scores: {}, wgslKernels: { exactPartitions: 0, gradient: false } };
  if (inputs.estimator !== 'gradient') {
    const exact = await exactImportance(importanceInputs, { onProgress: inputs.onProgress, signal: inputs.signal });
    analysis.scores.loss_increase = exact.lossIncrease;
    analysis.scores.kl = exact.kl;
    analysis.exactSeconds = exact.seconds;
    analysis.cleanLoss = exact.cleanLoss;
    analysis.unreadPartitions = exact.unreadPartitions;
    analysis.unchangedPartitions = exact.unchangedPartitions;
    analysis.wgslKernels.exactPartitions = exact.fusedPartitions;
  }
  if (inputs.estimator !== 'exact') {
    const gradient = await gradientImportance(importanceInputs, 'finetune', inputs.signal);
    analysis.scores.gradient_signed = gradient.signed;
    analysis.scores.gradient_absolute = gradient.absolute;
    analysis.gradientSeconds = gradient.seconds;
    analysis.wgslKernels.gradient = gradient.fused;
  }
  return analysis;
}
