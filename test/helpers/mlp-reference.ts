/**
 * The MLP family's forward pass written out in plain arithmetic (float64), independent of the
 * engine's tfjs path: pixels / 255, Linear + ReLU per hidden layer, the task's Linear head,
 * weights stored [out, in]. Tests re-score what the platform recorded with it.
 */
import { TaskSplit } from '../../src/engine/data/task-data';
import { loadModel } from '../../src/engine/families/model';

/** The predicted class (index of the largest logit) of each example of `split`. */
export function mlpPredictions(modelDir: string, task: string, split: TaskSplit): number[] {
  const model = loadModel(modelDir);
  const layer = (x: number[], weight: Float32Array, bias: Float32Array, relu: boolean) =>
    Array.from(bias, (b, o) => {
      let sum = b;
      for (let i = 0; i < x.length; i++) sum += weight[o * x.length + i] * x[i];
      return relu ? Math.max(0, sum) : sum;
    });
  const size = split.exampleShape.reduce((a, b) => a * b, 1);
  return Array.from({ length: split.count }, (_, e) => {
    let x = Array.from(split.inputs.subarray(e * size, (e + 1) * size), (v) => Number(v) / 255);
    for (let l = 0; model.params.has(`trunk.layers.${l}.weight`); l++) x = layer(x, model.params.get(`trunk.layers.${l}.weight`)!, model.params.get(`trunk.layers.${l}.bias`)!, true);
    const out = layer(x, model.params.get(`heads.${task}.weight`)!, model.params.get(`heads.${task}.bias`)!, false);
    return out.indexOf(Math.max(...out));
  });
}

/** Accuracy of the model on `split` by that forward pass. */
export function mlpAccuracy(modelDir: string, task: string, split: TaskSplit): number {
  const predicted = mlpPredictions(modelDir, task, split);
  return predicted.filter((p, i) => p === split.labels[i]).length / split.count;
}
