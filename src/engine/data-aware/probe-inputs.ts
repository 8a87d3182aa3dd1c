/**
 * What the data-aware baselines (Fisher merging, RegMean) read for each model they merge: the
 * model, the task whose head it is scored with, and that task's probe split — checked the way APL
 * checks its own, so a bad probe file fails before any pass is run, naming the file and the reason.
 */
import { getSplit, loadTaskData, TaskSplit } from '../data/task-data';
import { MergeInputError } from '../errors';
import { loadModel, Model } from '../families/model';
import { labelsProblem, requireHead } from '../families/types';
import { PrepareContext } from '../methods/types';

/** The head a model is scored with: the one named, or its only one. */
export function singleTask(model: Model, given: string | undefined): string {
  // A language model's one head scores any task.
  if (model.config.languageModel) return given ?? 'lm';
  const tasks = Object.keys(model.config.tasks);
  if (given) {
    if (!tasks.includes(given)) throw new MergeInputError(`${model.path}: has no head for task "${given}" (heads: ${tasks.join(', ')})`);
    return given;
  }
  if (tasks.length !== 1) throw new MergeInputError(`${model.path}: has ${tasks.length} heads (${tasks.join(', ')}); name one with the "task" parameter`);
  return tasks[0];
}

export interface ProbedModel {
  model: Model;
  task: string;
  probePath: string;
  probe: TaskSplit;
}

/** Each model of the merge with its probe split (per-model "probe" and, for several heads, "task"); `loaded`: the models, when the caller has read them already. */
export function probedModels(context: PrepareContext, method: string, loaded?: readonly Model[]): ProbedModel[] {
  return context.models.map((reference, t) => {
    const params = context.perModel[t];
    const probePath = params.probe as string;
    if (!probePath) throw new MergeInputError(`models[${t}] (${reference}): ${method} needs per-model "probe" (task data whose probe split it reads)`);
    const model = loaded?.[t] ?? loadModel(reference);
    const task = singleTask(model, (params.task as string) || undefined);
    const probe = getSplit(loadTaskData(probePath), 'probe');
    const classes = requireHead(model.config, task, reference);
    if (probe.count === 0) throw new MergeInputError(`${probePath}: the probe split has no examples`);
    const labels = labelsProblem(probe, classes, `${probePath} (probe split)`, `${reference}'s ${classes}-class head "${task}"`);
    if (labels) throw new MergeInputError(labels);
    const problem = model.family.inputsProblem(model.config, probe, `${probePath} (probe split)`);
    if (problem) throw new MergeInputError(problem);
    return { model, task, probePath, probe };
  });
}

/** Every model must have the same trunk (names and shapes), or nothing can be merged element by element. */
export function checkSameTrunk(models: readonly ProbedModel[]): void {
  const [first, ...rest] = models;
  const shapes = first.model.family.trunkShapes(first.model.config);
  for (const { model } of rest) {
    for (const { name, shape } of shapes) {
      const other = model.shapes.get(name);
      if (!other) throw new MergeInputError(`${model.path}: lacks trunk tensor "${name}" that ${first.model.path} has: the models are not homologous`);
      if (other.join(',') !== shape.join(',')) throw new MergeInputError(`trunk tensor "${name}" has shape [${shape.join(', ')}] in ${first.model.path} but [${other.join(', ')}] in ${model.path}`);
    }
  }
}
