/**
 * A task's labelled data on disk: one safetensors file per task holding, for each split,
 * `<split>.inputs` (U8 images [n, 28, 28], or I32 token ids [n, length]) and `<split>.labels`
 * (I32 [n]; or I32 [n, length] token labels for a language-model task), with the task's name and
 * class count in `__metadata__`; or a language-model task's JSONL (lm-tasks.ts). Loading checks everything a
 * model will rely on and names the file, split and reason when something is off.
 */
import { openCheckpoint, TensorReader } from '../checkpoint/checkpoint';
import { writeSafetensorsFile } from '../checkpoint/writer';
import { CheckpointError } from '../errors';
import { loadLmTaskJsonl } from './lm-tasks';

/** The label that marks a token that is not scored (PyTorch's ignore_index). */
export const IGNORED_LABEL = -100;

export interface TaskSplit {
  /** Raw inputs: bytes for images, token ids for text. */
  inputs: Uint8Array | Int32Array;
  /** Shape of one example (e.g. [28, 28] or [64]). */
  exampleShape: number[];
  /** Class labels [n], or token labels [n, length] for a language-model task (−100: not scored). */
  labels: Int32Array;
  count: number;
  /** 1 for class labels; the sequence length for token labels. */
  labelsPerExample?: number;
}

export interface TaskData {
  file: string;
  task: string;
  classes: number;
  description: string;
  splits: Map<string, TaskSplit>;
}

/** Whether a split's labels are tokens (a language-model task's, [n, length]) rather than one class per example. */
export function splitHasTokenLabels(split: Pick<TaskSplit, 'labelsPerExample'>): boolean {
  return (split.labelsPerExample ?? 1) > 1;
}

/** Whether a task's labels are tokens (a language-model task) rather than one class per example. */
export function hasTokenLabels(data: TaskData): boolean {
  return [...data.splits.values()].some(splitHasTokenLabels);
}

export function saveTaskData(
  file: string,
  task: { name: string; classes: number; description: string; seed: number },
  splits: Record<string, { inputs: Uint8Array | Int32Array; exampleShape: number[]; labels: Int32Array; count: number; labelsPerExample?: number }>,
): void {
  const tensors = Object.entries(splits).flatMap(([split, s]) => [
    {
      name: `${split}.inputs`,
      dtype: s.inputs instanceof Uint8Array ? ('U8' as const) : ('I32' as const),
      shape: [s.count, ...s.exampleShape],
      data: new Uint8Array(s.inputs.buffer, s.inputs.byteOffset, s.inputs.byteLength),
    },
    { name: `${split}.labels`, dtype: 'I32' as const, shape: splitHasTokenLabels(s) ? [s.count, s.labelsPerExample!] : [s.count], data: new Uint8Array(s.labels.buffer, s.labels.byteOffset, s.labels.byteLength) },
  ]);
  writeSafetensorsFile(file, tensors, { task: task.name, classes: String(task.classes), description: task.description, seed: String(task.seed) });
}

export function loadTaskData(file: string): TaskData {
  if (file.endsWith('.jsonl')) return loadLmTaskJsonl(file);
  const checkpoint = openCheckpoint(file);
  const meta = checkpoint.metadata ?? {};
  const fail = (reason: string, tensor?: string): never => {
    throw new CheckpointError(file, reason, tensor);
  };
  if (!meta.task) fail('__metadata__ has no "task": not a task data file');
  const classes = Number(meta.classes);
  if (!Number.isInteger(classes) || classes < 2) fail(`__metadata__ "classes" is ${JSON.stringify(meta.classes)}, not an integer ≥ 2`);
  const reader = new TensorReader();
  const splits = new Map<string, TaskSplit>();
  try {
    for (const name of checkpoint.names) {
      if (!name.endsWith('.inputs')) continue;
      const split = name.slice(0, -'.inputs'.length);
      const inputs = checkpoint.tensors.get(name)!;
      const labels = checkpoint.tensors.get(`${split}.labels`);
      if (!labels) fail(`has inputs but no "${split}.labels"`, name);
      if (inputs.dtype !== 'U8' && inputs.dtype !== 'I32') fail(`dtype ${inputs.dtype}: inputs must be U8 images or I32 token ids`, name);
      // Token labels ([n, length], as the inputs: a language-model task) or class labels ([n]).
      const tokenLabels = labels!.shape.length === 2;
      if (labels!.dtype !== 'I32' || (labels!.shape.length !== 1 && !(tokenLabels && inputs.dtype === 'I32' && JSON.stringify(labels!.shape) === JSON.stringify(inputs.shape)))) {
        fail(`must be I32 of shape [n] (class labels) or of the token inputs' shape ${JSON.stringify(inputs.shape)} (token labels), is ${labels!.dtype} ${JSON.stringify(labels!.shape)}`, labels!.name);
      }
      if (inputs.shape[0] !== labels!.shape[0]) fail(`${inputs.shape[0]} inputs but ${labels!.shape[0]} labels`, name);
      const rawInputs = reader.read(inputs);
      const labelValues = new Int32Array(reader.read(labels!).buffer);
      const per = tokenLabels ? labels!.shape[1] : 1;
      const bad = labelValues.findIndex((y) => (y < 0 || y >= classes) && !(tokenLabels && y === IGNORED_LABEL));
      if (bad >= 0) {
        fail(tokenLabels ? `label ${labelValues[bad]} of example ${Math.floor(bad / per)} at position ${bad % per} is outside 0..${classes - 1} (and not ${IGNORED_LABEL})` : `label ${labelValues[bad]} at index ${bad} is outside 0..${classes - 1}`, labels!.name);
      }
      splits.set(split, {
        inputs: inputs.dtype === 'U8' ? rawInputs : new Int32Array(rawInputs.buffer),
        exampleShape: inputs.shape.slice(1),
        labels: labelValues,
        count: inputs.shape[0],
        ...(tokenLabels ? { labelsPerExample: per } : {}),
      });
    }
  } finally {
    reader.close();
  }
  return { file, task: meta.task, classes, description: meta.description ?? '', splits };
}

export function getSplit(data: TaskData, split: string): TaskSplit {
  const found = data.splits.get(split);
  if (!found) throw new CheckpointError(data.file, `has no "${split}" split (it has: ${[...data.splits.keys()].join(', ')})`);
  return found;
}
