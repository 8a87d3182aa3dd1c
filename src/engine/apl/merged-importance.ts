/**
 * Importance measured on the merged model (APL `locate: merged`). APL's definition measures each
 * fine-tune's partitions on that fine-tune alone; what a merge needs to know is different: in the
 * model that the merge makes, does task t's contribution at partition k help or hurt the tasks
 * together? So here the intervention is on the merged model θ_m = θ_0 + Σ_t c_t (c_t: task t's
 * contribution, its task vector as the merge takes it — dropped, weighted, times λ):
 *
 *   I_{t,k} = mean over tasks s of [ L_s(θ_m − c_{t,k}) − L_s(θ_m) ]     (exact: loss increase, or KL)
 *   Î_{t,k} = −ḡ · c_{t,k},  ḡ = mean over s of ∇L_s(θ_m)               (gradient, signed)
 *
 * Each task s is scored through its own head on its own probe split. A negative score marks a
 * contribution that the other tasks pay for more than its own task gains: the conflicts that
 * merging must resolve, located by the data rather than by sign (TIES) or chance (DARE).
 *
 * Exact intervention is importance.ts's, run on pairs of in-memory models: the merged model with
 * task s's head as the "fine-tune", and the merged model without c_t as the "base". The gradient
 * is importance.ts's too, taken once per task at the merged model and dotted with every c_t. So
 * every family, level and backend those support, this supports.
 */
import { totalmem } from 'node:os';
import { TaskSplit } from '../data/task-data';
import { MergeInputError, throwIfAborted } from '../errors';
import { Model, modelOf } from '../families/model';
import { ProgressCallback, ProgressTracker } from '../progress';
import { isSignedScore } from './calibrate';
import { exactImportance, gradientAlong } from './importance';
import { PartitionScheme } from './partitions';

export interface LocatedMember {
  model: Model;
  task: string;
  probe: TaskSplit;
}

export interface MergedImportanceOptions {
  scheme: PartitionScheme;
  /** Member t's contribution to the merged trunk tensor `name` (λ included): what the merge adds for it. */
  contribution: (t: number, name: string, shape: readonly number[]) => Float32Array;
  estimator: 'exact' | 'gradient';
  /** exact: loss increase or KL divergence; gradient: −ḡ·c (signed) or its magnitude. */
  metric: 'loss' | 'kl';
  gradientForm: 'absolute' | 'signed';
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
}

export interface MergedImportance {
  /** Per member t, per partition k: the importance of c_{t,k} to the merged model's mean probe loss. */
  scores: Float64Array[];
  /** Per member t: how many of its partitions the merged model is better without (a negative score; none for KL and magnitudes). */
  harmful: number[];
  /** The merged model's mean probe loss over the members (exact only: the gradient pass does not report it). */
  mergedProbeLoss?: number;
  seconds: number;
}

/** The importance of each member's contribution at each partition, measured on the merged model. */
export async function mergedImportance(base: Model, members: readonly LocatedMember[], options: MergedImportanceOptions): Promise<MergedImportance> {
  const started = Date.now();
  const { scheme } = options;
  const trunk = [...scheme.shapes.entries()];
  const trunkNames = new Set(scheme.shapes.keys());
  // The base's trunk, the merged one, each contribution, and one model without a contribution at a time.
  const bytes = 4 * (members.length + 3) * trunk.reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
  if (bytes > totalmem() / 2) {
    throw new MergeInputError(`locate: merged holds the merged model and ${members.length} contributions (${(bytes / 1024 ** 3).toFixed(1)} GiB of float32), more than half of this machine's memory; use locate: finetune`);
  }
  const contributions = members.map((_, t) => new Map(trunk.map(([name, shape]) => [name, options.contribution(t, name, shape)])));
  const merged = new Map<string, Float32Array>();
  for (const [name] of trunk) {
    const sum = Float32Array.from(base.params.get(name)!);
    for (const c of contributions) {
      const values = c.get(name)!;
      for (let j = 0; j < sum.length; j++) sum[j] += values[j];
    }
    merged.set(name, sum);
  }
  // A member's model with `trunkValues` in place of its trunk, keeping its own head(s).
  const withTrunk = (member: LocatedMember, trunkValues: Map<string, Float32Array>, label: string): Model => {
    const params = new Map(trunkValues);
    for (const [name, values] of member.model.params) if (!trunkNames.has(name)) params.set(name, values);
    return modelOf(member.model.family, member.model.config, params, label);
  };
  const mergedModels = members.map((m) => withTrunk(m, merged, `the merged model (${m.task} head)`));
  // The merged model without c_t, in float32: what the intervention on c_t's partitions sets them back to.
  const without = (t: number, name: string): Float32Array => {
    const values = Float32Array.from(merged.get(name)!);
    const c = contributions[t].get(name)!;
    for (let j = 0; j < values.length; j++) values[j] -= c[j];
    return values;
  };
  // Per member t, the score of c_t for the tasks together: the mean over tasks s of its score for s.
  const totals = members.map(() => new Float64Array(scheme.count));
  const add = (t: number, score: Float64Array) => score.forEach((v, k) => (totals[t][k] += v / members.length));
  let mergedProbeLoss: number | undefined;
  if (options.estimator === 'exact') {
    const progress = new ProgressTracker('locate on the merged model', members.length * members.length, options.onProgress);
    let cleanLoss = 0;
    for (const t of members.keys()) {
      const trunkWithout = new Map([...merged.keys()].map((name) => [name, without(t, name)]));
      cleanLoss = 0;
      for (const [s, member] of members.entries()) {
        throwIfAborted(options.signal);
        const inputs = { base: withTrunk(member, trunkWithout, `the merged model without models[${t}] (${member.task} head)`), finetune: mergedModels[s], task: member.task, probe: member.probe, scheme };
        const exact = await exactImportance(inputs, { signal: options.signal });
        add(t, options.metric === 'kl' ? exact.kl : exact.lossIncrease);
        cleanLoss += exact.cleanLoss / members.length;
        progress.report(t * members.length + s + 1, `models[${t}] scored for ${member.task}`);
      }
    }
    mergedProbeLoss = cleanLoss;
  } else {
    // One gradient per task s, at the merged model, scores every contribution: T passes, not T².
    const progress = new ProgressTracker('locate on the merged model', members.length, options.onProgress);
    // c_t as the intervention sees it: the merged model minus the merged model without c_t.
    const deltas = members.map((_, t) => (name: string) => {
      const m = merged.get(name)!;
      const delta = new Float64Array(without(t, name));
      for (let j = 0; j < delta.length; j++) delta[j] = m[j] - delta[j];
      return delta;
    });
    for (const [s, member] of members.entries()) {
      throwIfAborted(options.signal);
      (await gradientAlong(mergedModels[s], member.task, member.probe, scheme, deltas)).forEach((score, t) => add(t, score));
      progress.report(s + 1, `gradient for ${member.task}`);
    }
  }
  const scores = options.estimator === 'gradient' && options.gradientForm === 'absolute' ? totals.map((total) => total.map(Math.abs)) : totals;
  const signed = isSignedScore(options.estimator, options.metric, options.gradientForm);
  return {
    scores,
    harmful: scores.map((score) => (signed ? score.filter((v) => v < 0).length : 0)),
    ...(mergedProbeLoss !== undefined ? { mergedProbeLoss } : {}),
    seconds: (Date.now() - started) / 1000,
  };
}
