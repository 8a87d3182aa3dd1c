/**
 * Scoring a model on registered tasks: accuracy on each task's test and OOD splits. The merge job
 * scores what it merged, the evaluation job a registered model; both pick tasks by one rule (a
 * registered task the model has a head of that name and size for), which the request checks too.
 */
import { getSplit, loadTaskData, splitHasTokenLabels, TaskData } from '../engine/data/task-data';
import { yieldThenCheckAbort } from '../engine/errors';
import { loadModel, modelFamilyOfReference } from '../engine/families/model';
import { FamilyConfig, headMismatch, ModelFamily } from '../engine/families/types';
import { ProgressCallback, ProgressTracker } from '../engine/progress';
import { evaluate } from '../engine/train/evaluate';
import { PrismaClient } from '../store/generated/client';
import { checkpointPath } from '../store/registry';

/** The splits a model is scored on. */
export const SCORED_SPLITS: readonly string[] = ['test', 'ood'];

export interface Score {
  taskId: string;
  task: string;
  split: string;
  value: number;
}

type TaskRow = { id: string; name: string; classes: number; dataUri: string };

/** A task the model can be scored on, with its data (read once, checked, then scored). */
export interface ScorableTask {
  task: TaskRow;
  data: TaskData;
}

/**
 * The task's data when every one of `splits` it has can be fed to the model, or why not
 * (unreadable, or examples of another shape or type than its inputs). Read at request time, so a
 * job that would fail in the worker is refused instead.
 */
function readFitting(found: { family: ModelFamily<FamilyConfig>; config: FamilyConfig }, task: TaskRow, splits: readonly string[]): { data: TaskData } | { problem: string } {
  let data: TaskData;
  try {
    data = loadTaskData(checkpointPath(task.dataUri));
  } catch (err) {
    return { problem: `the data of task "${task.name}" cannot be read: ${(err as Error).message}` };
  }
  for (const split of splits.filter((s) => data.splits.has(s))) {
    const part = getSplit(data, split);
    if (splitHasTokenLabels(part) && !found.config.languageModel) return { problem: `task "${task.name}" (${split} split) is a language-model task (token labels); the ${found.family.name} model is a classifier` };
    const problem = found.family.inputsProblem(found.config, part, `task "${task.name}" (${split} split)`);
    if (problem) return { problem };
  }
  return { data };
}

/** Why `task`'s data cannot be fed to the model on `splits`, or undefined when it can. */
export function inputsMismatch(found: { family: ModelFamily<FamilyConfig>; config: FamilyConfig }, task: TaskRow, splits: readonly string[]): string | undefined {
  const read = readFitting(found, task, splits);
  return 'problem' in read ? read.problem : undefined;
}

/**
 * The registered tasks a model (a checkpoint, or MODEL+ADAPTER: see runnableModel) can be scored
 * on (only `taskId`, when given), or why there are none: a family the engine cannot run, no head
 * for the task, a head of another size than the task's classes.
 */
export async function scorableTasks(prisma: Pick<PrismaClient, 'task'>, model: string, taskId?: string): Promise<{ tasks: ScorableTask[] } | { reason: string; missing?: true }> {
  let found: ReturnType<typeof modelFamilyOfReference>;
  try {
    found = modelFamilyOfReference(model);
  } catch (err) {
    // A config of a known model_type that does not describe a runnable model (a tensors-only
    // checkpoint, say) can still be merged; it just cannot be scored, and says why.
    return { reason: `it cannot be run: ${(err as Error).message}` };
  }
  if ('unknown' in found) return { reason: found.unknown };
  const names = Object.keys(found.config.tasks);
  if (taskId) {
    const task = await prisma.task.findUnique({ where: { id: taskId } });
    if (!task) return { reason: `task ${taskId} does not exist`, missing: true };
    const mismatch = headMismatch(found.config, task);
    if (mismatch) return { reason: mismatch };
    const read = readFitting(found, task, SCORED_SPLITS);
    return 'problem' in read ? { reason: read.problem } : { tasks: [{ task, data: read.data }] };
  }
  // A classifier is scored on the tasks named as its heads; a language model's one head on every
  // registered language-model task (the kind recorded at registration, so no classifier task's
  // data is read to find that out) whose tokens are within its vocabulary.
  const { languageModel } = found.config;
  const registered = await prisma.task.findMany({ where: languageModel ? { kind: 'LANGUAGE_MODEL', classes: { lte: languageModel.vocabulary } } : { name: { in: names } }, orderBy: { name: 'asc' } });
  const sized = registered.filter((t) => headMismatch(found.config, t) === undefined);
  const reads = sized.map((task) => ({ task, read: readFitting(found, task, SCORED_SPLITS) }));
  const tasks = reads.flatMap(({ task, read }) => ('data' in read ? [{ task, data: read.data }] : []));
  const problems = reads.flatMap(({ read }) => ('problem' in read ? [read.problem] : []));
  if (tasks.length === 0) return { reason: `${languageModel ? 'no registered language-model task fits it' : `no registered task matches its heads (${names.join(', ') || 'none'})`}${problems.length > 0 ? `: ${problems.join('; ')}` : ''}` };
  return { tasks };
}

/** Accuracy of `reference` (a checkpoint, or MODEL+ADAPTER) on the test and OOD splits of each task, as progress of phase "evaluate". */
export async function scoreOnTasks(reference: string, tasks: readonly ScorableTask[], onProgress: ProgressCallback, signal: AbortSignal): Promise<Score[]> {
  const model = loadModel(reference);
  const tracker = new ProgressTracker('evaluate', tasks.length, onProgress);
  tracker.report(0, `scoring on ${tasks.map(({ task }) => task.name).join(', ')}`);
  const scores: Score[] = [];
  for (const [i, { task, data }] of tasks.entries()) {
    await yieldThenCheckAbort(signal);
    for (const split of SCORED_SPLITS.filter((s) => data.splits.has(s))) {
      scores.push({ taskId: task.id, task: task.name, split, value: (await evaluate(model, task.name, getSplit(data, split))).accuracy });
    }
    tracker.report(i + 1, `scored ${task.name}`);
  }
  return scores;
}
