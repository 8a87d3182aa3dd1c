/**
 * WGSL kernel of APL's exact intervention for row partitions of an MLP layer whose output reaches
 * the logits through linear maps only (apl/importance.ts does the same math with tfjs ops):
 *
 *   change[p, b] = act(W_b[r_p]·x_b + b_b[r_p]) − h[b, r_p]           unit r_p set back to the base
 *   mode 0 (the layer feeds the head):   logits = z[b] + change·W'[:, r_p]
 *   mode 1 (one more layer, then head):  logits = H·act'(z[b] + change·W'[:, r_p]) + c, where z
 *                                        is that layer's clean pre-activation
 *
 * then each example's loss increase and KL(clean ‖ corrupted), averaged per partition. Both are
 * computed from the change of the logits d (never from the corrupted logits themselves, whose
 * float32 rounding would swamp increases thousands of times smaller than the loss). With the
 * clean probabilities p, m = Σ p·d and e = d − m: the KL is log Σ p·e^e = q + log1pmx(r + q),
 * where r = Σ p·e (zero but for rounding) and q = Σ p·(e^e − 1 − e), and the loss increase is
 * KL + r − e_label. Every term is computed without cancellation (series for small arguments),
 * so both keep float32's relative precision however small d is. One
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
  cleanProbabilities: u32,
  labels: u32,
  rows: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
  pad3: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;

const WORKGROUP = ${INTERVENTION_WORKGROUP}u;
${pairSumWgsl(INTERVENTION_WORKGROUP)}

fn activate(value: f32, relu: u32) -> f32 {
  return select(value, max(value, 0.0), relu == 1u);
}

/** e^x − 1 − x without cancellation (Taylor terms to x^7 below 0.1: error < 3e-13 relative). */
fn expm1mx(x: f32) -> f32 {
  if (abs(x) < 0.1) {
    return x * x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0 + x / 5040.0)))));
  }
  return exp(x) - 1.0 - x;
}

/** log(1 + x) − x without cancellation (series to x^9 below 0.1: error < 1e-10 relative). */
fn log1pmx(x: f32) -> f32 {
  if (abs(x) < 0.1) {
    return x * x * (-0.5 + x * (1.0 / 3.0 + x * (-0.25 + x * (0.2 + x * (-1.0 / 6.0 + x * (1.0 / 7.0 + x * (-0.125 + x / 9.0)))))));
  }
  return log(1.0 + x) - x;
}

@compute @workgroup_size(${INTERVENTION_WORKGROUP})
fn rowIntervention(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let p = wid.y * params.groupsX + wid.x;
  let inRange = p < params.partitions;
  var increaseSum = 0.0;
  var klSum = 0.0;
  if (inRange) {
    let r = bitcast<u32>(data[params.rows + p]);
    let classes = params.classes;
    // The change of each logit, d.
    var delta: array<f32, ${MAX_CLASSES}>;
    for (var b = lid; b < params.examples; b += WORKGROUP) {
      var pre = data[params.baseBias + r];
      let xAt = params.x + b * params.inDim;
      let wAt = params.baseWeight + r * params.inDim;
      for (var i = 0u; i < params.inDim; i++) {
        pre += data[wAt + i] * data[xAt + i];
      }
      let change = activate(pre, params.stageRelu) - data[params.cleanOutput + b * params.units + r];
      if (params.mode == 0u) {
        for (var c = 0u; c < classes; c++) {
          delta[c] = change * data[params.consumerWeight + c * params.units + r];
        }
      } else {
        for (var c = 0u; c < classes; c++) {
          delta[c] = 0.0;
        }
        let zAt = params.consumerPre + b * params.width;
        for (var o = 0u; o < params.width; o++) {
          let z = data[zAt + o];
          let hiddenChange = activate(z + change * data[params.consumerWeight + o * params.units + r], params.consumerRelu) - activate(z, params.consumerRelu);
          if (hiddenChange != 0.0) {
            for (var c = 0u; c < classes; c++) {
              delta[c] += hiddenChange * data[params.headWeight + c * params.width + o];
            }
          }
        }
      }
      let cleanAt = params.cleanProbabilities + b * classes;
      var mean = 0.0;
      for (var c = 0u; c < classes; c++) {
        mean += data[cleanAt + c] * delta[c];
      }
      var residual = 0.0;
      var curvature = 0.0;
      for (var c = 0u; c < classes; c++) {
        let probability = data[cleanAt + c];
        let centred = delta[c] - mean;
        residual += probability * centred;
        curvature += probability * expm1mx(centred);
      }
      let kl = curvature + log1pmx(residual + curvature);
      klSum += kl;
      increaseSum += kl + residual - (delta[bitcast<u32>(data[params.labels + b])] - mean);
    }
  }
  let totals = workgroupPairSum(lid, increaseSum, klSum);
  if (inRange && lid == 0u) {
    result[2u * p] = totals.x / f32(params.examples);
    result[2u * p + 1u] = totals.y / f32(params.examples);
  }
}
`;
