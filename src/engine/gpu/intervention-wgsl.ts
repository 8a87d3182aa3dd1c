/**
 * WGSL kernel of APL's exact intervention for row partitions of an MLP layer whose output reaches
 * the logits through linear maps only (apl/importance.ts does the same math with tfjs ops):
 *
 *   change[p, b] = act(W_b[r_p]·x_b + b_b[r_p]) − h[b, r_p]           unit r_p set back to the base
 *   mode 0 (the layer feeds the head):   logits = z[b] + change·W'[:, r_p]
 *   mode 1 (one more layer, then head):  logits = H·act'(z[b] + change·W'[:, r_p]) + c
 *
 * then each example's cross-entropy and KL(clean ‖ corrupted), averaged per partition. One
 * workgroup per partition, its invocations striding over the probe examples: the partition's
 * base row is read by every invocation (cached), and nothing of size partitions × examples ×
 * width is ever stored — tfjs needs several such tensors and one dispatch per op.
 *
 * Every input lives in one read-only array at offsets given in the parameters (WebGPU guarantees
 * only 8 storage bindings per stage); labels and row indices are stored as u32 bit patterns.
 */
import { pairSumWgsl } from './buffers';

export const MAX_CLASSES = 64;
export const INTERVENTION_WORKGROUP = 64;

export const INTERVENTION_WGSL = /* wgsl */ `
struct Params {
  examples: u32,
  inDim: u32,
  units: u32,
  width: u32,
  classes: u32,
  mode: u32,
  stageRelu: u32,
  consumerRelu: u32,
  partitions: u32,
  groupsX: u32,
  x: u32,
  baseWeight: u32,
  baseBias: u32,
  cleanOutput: u32,
  consumerPre: u32,
  consumerWeight: u32,
  headWeight: u32,
  headBias: u32,
  cleanLogProbs: u32,
  labels: u32,
  rows: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;

const WORKGROUP = ${INTERVENTION_WORKGROUP}u;
${pairSumWgsl(INTERVENTION_WORKGROUP)}

fn activate(value: f32, relu: u32) -> f32 {
  return select(value, max(value, 0.0), relu == 1u);
}

@compute @workgroup_size(${INTERVENTION_WORKGROUP})
fn rowIntervention(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let p = wid.y * params.groupsX + wid.x;
  let inRange = p < params.partitions;
  var lossSum = 0.0;
  var klSum = 0.0;
  if (inRange) {
    let r = bitcast<u32>(data[params.rows + p]);
    let classes = params.classes;
    var logits: array<f32, ${MAX_CLASSES}>;
    for (var b = lid; b < params.examples; b += WORKGROUP) {
      var pre = data[params.baseBias + r];
      let xAt = params.x + b * params.inDim;
      let wAt = params.baseWeight + r * params.inDim;
      for (var i = 0u; i < params.inDim; i++) {
        pre += data[wAt + i] * data[xAt + i];
      }
      let change = activate(pre, params.stageRelu) - data[params.cleanOutput + b * params.units + r];
      let zAt = params.consumerPre + b * params.width;
      if (params.mode == 0u) {
        for (var c = 0u; c < classes; c++) {
          logits[c] = data[zAt + c] + change * data[params.consumerWeight + c * params.units + r];
        }
      } else {
        for (var c = 0u; c < classes; c++) {
          logits[c] = data[params.headBias + c];
        }
        for (var o = 0u; o < params.width; o++) {
          let hidden = activate(data[zAt + o] + change * data[params.consumerWeight + o * params.units + r], params.consumerRelu);
          for (var c = 0u; c < classes; c++) {
            logits[c] += hidden * data[params.headWeight + c * params.width + o];
          }
        }
      }
      var top = logits[0];
      for (var c = 1u; c < classes; c++) {
        top = max(top, logits[c]);
      }
      var total = 0.0;
      for (var c = 0u; c < classes; c++) {
        total += exp(logits[c] - top);
      }
      let logTotal = top + log(total);
      lossSum += logTotal - logits[bitcast<u32>(data[params.labels + b])];
      let cleanAt = params.cleanLogProbs + b * classes;
      for (var c = 0u; c < classes; c++) {
        let clean = data[cleanAt + c];
        klSum += exp(clean) * (clean - (logits[c] - logTotal));
      }
    }
  }
  let totals = workgroupPairSum(lid, lossSum, klSum);
  if (inRange && lid == 0u) {
    result[2u * p] = totals.x / f32(params.examples);
    result[2u * p + 1u] = totals.y / f32(params.examples);
  }
}
`;
