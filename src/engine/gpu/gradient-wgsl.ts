/**
 * WGSL kernels of APL's gradient approximation for an MLP (linear layers with named activations
 * and a linear head; apl/importance.ts does the same with tfjs ops and autodiff). One submission
 * per task, in order:
 *   forward       per layer, then the head: out = act(a·Wᵀ + bias)          one invocation per output
 *   softmaxGrad   dlogits = (softmax(logits) − onehot(label)) · scale           one per example
 *   backward      from the head down: dpre = (dnext·W) ⊙ act'(h)              one per output
 *   rowScores     per layer row r: Σ_b dpre[b, r]·(a_b·δW[r]) and Σ_b dpre[b, r]·δb[r]
 *                 (one workgroup per row, reduced in workgroup memory)
 * so g·δ is formed row by row without writing the gradient itself. All tensors live in one
 * storage buffer at offsets (in 4-byte words) given per dispatch; labels are u32 bit patterns.
 */
import { pairSumWgsl } from './buffers';

export const GRADIENT_WORKGROUP = 64;
/** An absent tensor's offset (a layer or head without bias). */
export const NONE = 0xffffffff;

export const GRADIENT_WGSL = /* wgsl */ `
struct Params {
  m: u32,
  n: u32,
  k: u32,
  a: u32,
  b: u32,
  c: u32,
  d: u32,
  out: u32,
  relu: u32,
  scale: f32,
  groupsX: u32,
  pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> memory: array<f32>;

const WORKGROUP = ${GRADIENT_WORKGROUP}u;
const NONE = ${NONE}u;
${pairSumWgsl(GRADIENT_WORKGROUP)}

fn invocation(wid: vec3u, lid: u32) -> u32 {
  return (wid.y * params.groupsX + wid.x) * WORKGROUP + lid;
}

/** out[i, o] = act(bias[o] + Σ_j a[i, j]·w[o, j]): a [m, k] at a, w [n, k] at b, bias at c (or none). */
@compute @workgroup_size(${GRADIENT_WORKGROUP})
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = invocation(wid, lid);
  if (t >= params.m * params.n) { return; }
  let i = t / params.n;
  let o = t % params.n;
  var sum = 0.0;
  if (params.c != NONE) { sum = memory[params.c + o]; }
  for (var j = 0u; j < params.k; j++) {
    sum += memory[params.a + i * params.k + j] * memory[params.b + o * params.k + j];
  }
  memory[params.out + t] = select(sum, max(sum, 0.0), params.relu == 1u);
}

/** Gradient of the mean cross-entropy at the logits [m, n] at a, labels at c: into out, times scale. */
@compute @workgroup_size(${GRADIENT_WORKGROUP})
fn softmaxGrad(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, lid);
  if (i >= params.m) { return; }
  let row = params.a + i * params.n;
  var top = memory[row];
  for (var c = 1u; c < params.n; c++) {
    top = max(top, memory[row + c]);
  }
  var total = 0.0;
  for (var c = 0u; c < params.n; c++) {
    total += exp(memory[row + c] - top);
  }
  let label = bitcast<u32>(memory[params.c + i]);
  for (var c = 0u; c < params.n; c++) {
    let p = exp(memory[row + c] - top) / total;
    memory[params.out + i * params.n + c] = (p - select(0.0, 1.0, c == label)) * params.scale;
  }
}

/** out[i, j] = (Σ_o a[i, o]·w[o, j])·act'(h[i, j]): a [m, k] at a, w [k, n] at b, h [m, n] at d. */
@compute @workgroup_size(${GRADIENT_WORKGROUP})
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = invocation(wid, lid);
  if (t >= params.m * params.n) { return; }
  let i = t / params.n;
  let j = t % params.n;
  var sum = 0.0;
  for (var o = 0u; o < params.k; o++) {
    sum += memory[params.a + i * params.k + o] * memory[params.b + o * params.n + j];
  }
  let flows = params.relu == 0u || memory[params.d + t] > 0.0;
  memory[params.out + t] = select(0.0, sum, flows);
}

/**
 * Row r of a layer (one workgroup each): out[r] = Σ_i dpre[i, r]·(a_i·δW[r]), out[n + r] =
 * δb[r]·Σ_i dpre[i, r]; a [m, k] at a, δW [n, k] at b, δb at c (or none), dpre [m, n] at d.
 */
@compute @workgroup_size(${GRADIENT_WORKGROUP})
fn rowScores(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wid.y * params.groupsX + wid.x;
  let inRange = r < params.n;
  var weightSum = 0.0;
  var biasSum = 0.0;
  if (inRange) {
    for (var i = lid; i < params.m; i += WORKGROUP) {
      var dot = 0.0;
      for (var j = 0u; j < params.k; j++) {
        dot += memory[params.a + i * params.k + j] * memory[params.b + r * params.k + j];
      }
      let g = memory[params.d + i * params.n + r];
      weightSum += g * dot;
      biasSum += g;
    }
  }
  let totals = workgroupPairSum(lid, weightSum, biasSum);
  if (inRange && lid == 0u) {
    memory[params.out + r] = totals.x;
    var biasScore = 0.0;
    if (params.c != NONE) { biasScore = totals.y * memory[params.c + r]; }
    memory[params.out + params.n + r] = biasScore;
  }
}
`;
