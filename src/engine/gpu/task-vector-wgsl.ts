/**
 * WGSL kernels of the task-vector merges (kernels/recipe.ts run on the GPU). One tensor is split
 * into chunks that each fit a storage binding; per chunk the host dispatches, in order:
 *   taskVectors   NaN/Inf counted per input; deltas −= base; selections count their high 15 magnitude bits
 *   cutHigh       (one workgroup per selection) the bucket of the k-th largest magnitude
 *   lowHistogram  magnitudes in that bucket count their low 16 bits
 *   cutLow        (one workgroup per selection) the exact threshold, how many at it to keep
 *   blockCounts   entries at the threshold per 256-entry block, then scanBlocks: their prefix
 *   rowSelect     (one workgroup per row) APL's deterministic drop: each row's largest magnitudes
 *   drops         each model's drop rule and row weights, in place
 *   combine       (sign election,) weighted sum, normalisation, λ, written over base
 * The selection is the CPU's radix selection (kernels/select.ts) and ties at the threshold are
 * kept in index order, as on the CPU; random drops use word i of the same Threefry stream.
 * Selections ("slots"): slot t holds model t's `keepCount` largest magnitudes (magnitude rules,
 * and Breadcrumbs' upper set); slot models + t its `outlierCount` largest (Breadcrumbs' outliers).
 */
/** The drop rules the kernels run, by the number they have in the per-model parameters. */
export const RULE_KIND = { keep: 0, zero: 1, magnitude: 2, bernoulli: 3, rowBernoulli: 4, rowTopK: 5, breadcrumbs: 6 } as const;
/** Histogram bins per selection: the high 15 magnitude bits, then the low 16. */
const HIGH_BINS = 32768;
const LOW_BINS = 65536;
export const BINS_PER_SELECTION = HIGH_BINS + LOW_BINS;
/** "None" in the per-model parameters and row data: no row weights, or keep the whole row. */
export const NONE = 0xffffffff;

export const TASK_VECTOR_WGSL = /* wgsl */ `
struct Chunk {
  start: u32,
  length: u32,
  groupsX: u32,
  models: u32,
  blocks: u32,
  rowLength: u32,
  rows: u32,
  consensus: u32,
  normalize: u32,
  lambda: f32,
  sumScale: f32,
  rowGroupsX: u32,
}

struct Model {
  kind: u32,
  threshold: u32,
  keepCount: u32,
  scale: f32,
  weight: f32,
  k0: u32,
  k1: u32,
  rowDrop: u32,
  rowWeights: u32,
  outlierCount: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read> models: array<Model>;
@group(0) @binding(2) var<storage, read_write> base: array<f32>;
@group(0) @binding(3) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(4) var<storage, read_write> histogram: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> cuts: array<u32>;
@group(0) @binding(6) var<storage, read_write> blockPrefix: array<u32>;
@group(0) @binding(7) var<storage, read> rowData: array<u32>;
@group(0) @binding(8) var<storage, read_write> nonFinite: array<atomic<u32>>;

const KEEP = ${RULE_KIND.keep}u;
const ZERO = ${RULE_KIND.zero}u;
const MAGNITUDE = ${RULE_KIND.magnitude}u;
const BERNOULLI = ${RULE_KIND.bernoulli}u;
const ROW_BERNOULLI = ${RULE_KIND.rowBernoulli}u;
const ROW_TOP_K = ${RULE_KIND.rowTopK}u;
const BREADCRUMBS = ${RULE_KIND.breadcrumbs}u;
const HIGH_BINS = ${HIGH_BINS}u;
const LOW_BINS = ${LOW_BINS}u;
const BINS_PER_MODEL = ${BINS_PER_SELECTION}u;
const NONE = ${NONE}u;
const MAGNITUDE_BITS = 0x7fffffffu;

var<workgroup> partial: array<u32, 256>;
var<workgroup> sharedKind: u32;
var<workgroup> counter: atomic<u32>;
var<workgroup> digits: array<atomic<u32>, 256>;
var<workgroup> sharedValue: u32;

fn threefry(k0: u32, k1: u32, c0: u32, c1: u32) -> vec2u {
  var rotations = array<u32, 8>(13u, 15u, 26u, 6u, 17u, 29u, 16u, 24u);
  var keys = array<u32, 3>(k0, k1, 0x1bd11bdau ^ k0 ^ k1);
  var x0 = c0 + k0;
  var x1 = c1 + k1;
  for (var round = 0u; round < 20u; round++) {
    let r = rotations[round & 7u];
    x0 = x0 + x1;
    x1 = ((x1 << r) | (x1 >> (32u - r))) ^ x0;
    if ((round & 3u) == 3u) {
      let injection = (round + 1u) >> 2u;
      x0 = x0 + keys[injection % 3u];
      x1 = x1 + keys[(injection + 1u) % 3u] + injection;
    }
  }
  return vec2u(x0, x1);
}

/** Word g of the stream (k0, k1), for g < 2^33: word g & 1 of block g >> 1. */
fn streamWord(k0: u32, k1: u32, g: u32) -> u32 {
  let pair = threefry(k0, k1, g >> 1u, 0u);
  return select(pair.x, pair.y, (g & 1u) == 1u);
}

fn localIndex(wid: vec3u, lid: u32) -> u32 {
  return (wid.y * chunk.groupsX + wid.x) * 256u + lid;
}

fn magnitudeOf(v: f32) -> u32 {
  return bitcast<u32>(v) & MAGNITUDE_BITS;
}

/** The model's rule kind, read so that every invocation agrees (barriers may follow a branch on it). */
fn uniformKind(t: u32, lid: u32) -> u32 {
  workgroupBarrier(); // everyone has read the previous model's kind
  if (lid == 0u) { sharedKind = models[t].kind; }
  return workgroupUniformLoad(&sharedKind);
}

/** Whether a selection slot is used, given its model's rule kind. */
fn slotActive(kind: u32, slot: u32) -> bool {
  if (slot < chunk.models) { return kind == MAGNITUDE || kind == BREADCRUMBS; }
  return kind == BREADCRUMBS;
}

fn slotCount(slot: u32) -> u32 {
  if (slot < chunk.models) { return models[slot].keepCount; }
  return models[slot - chunk.models].outlierCount;
}

/** Whether magnitude m, ranked (before) among its block's entries at the threshold, is in the slot's selection. */
fn selected(slot: u32, m: u32, before: u32, block: u32) -> bool {
  let threshold = cuts[slot * 8u + 2u];
  return m > threshold || (m == threshold && blockPrefix[slot * chunk.blocks + block] + before < cuts[slot * 8u + 3u]);
}

/**
 * Counts a NaN or ±Inf of input i (0: the base, t + 1: model t) and keeps its first index, as
 * NONE − index under atomicMax (the buffer starts at zero). Tested on the bits: WGSL lets
 * compilers assume that floats are finite.
 */
fn noteNonFinite(i: u32, v: f32, g: u32) {
  if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
    atomicAdd(&nonFinite[2u * i], 1u);
    atomicMax(&nonFinite[2u * i + 1u], NONE - g);
  }
}

@compute @workgroup_size(256)
fn taskVectors(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = localIndex(wid, lid);
  if (j >= chunk.length) { return; }
  let g = chunk.start + j;
  let b = base[j];
  noteNonFinite(0u, b, g);
  for (var t = 0u; t < chunk.models; t++) {
    let at = t * chunk.length + j;
    let value = deltas[at];
    noteNonFinite(t + 1u, value, g);
    let d = value - b;
    deltas[at] = d;
    let kind = models[t].kind;
    for (var slot = t; slot < 2u * chunk.models; slot += chunk.models) {
      if (slotActive(kind, slot)) {
        atomicAdd(&histogram[slot * BINS_PER_MODEL + (magnitudeOf(d) >> 16u)], 1u);
      }
    }
  }
}

/** Finds, from the top, the bin where the running count reaches k; bins are the model's histogram from \`offset\`. */
fn cut(t: u32, lid: u32, offset: u32, bins: u32, k: u32, aboveStart: u32) -> vec2u {
  let perThread = bins / 256u;
  var sum = 0u;
  for (var i = 0u; i < perThread; i++) {
    sum += atomicLoad(&histogram[offset + bins - 1u - (lid * perThread + i)]);
  }
  partial[lid] = sum;
  workgroupBarrier();
  var result = vec2u(0u, 0u);
  if (lid == 0u) {
    var above = aboveStart;
    var segment = 0u;
    while (segment < 255u && above + partial[segment] < k) {
      above += partial[segment];
      segment++;
    }
    var bin = bins - 1u - segment * perThread;
    loop {
      let count = atomicLoad(&histogram[offset + bin]);
      if (above + count >= k || bin == 0u) { break; }
      above += count;
      bin--;
    }
    result = vec2u(bin, above);
  }
  return result;
}

@compute @workgroup_size(256)
fn cutHigh(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let slot = wid.x;
  let found = cut(slot, lid, slot * BINS_PER_MODEL, HIGH_BINS, slotCount(slot), 0u);
  if (lid == 0u && slotActive(models[slot % chunk.models].kind, slot)) {
    cuts[slot * 8u] = found.x;
    cuts[slot * 8u + 1u] = found.y;
  }
}

@compute @workgroup_size(256)
fn lowHistogram(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = localIndex(wid, lid);
  if (j >= chunk.length) { return; }
  for (var slot = 0u; slot < 2u * chunk.models; slot++) {
    let t = slot % chunk.models;
    if (slotActive(models[t].kind, slot)) {
      let m = magnitudeOf(deltas[t * chunk.length + j]);
      if ((m >> 16u) == cuts[slot * 8u]) {
        atomicAdd(&histogram[slot * BINS_PER_MODEL + HIGH_BINS + (m & 0xffffu)], 1u);
      }
    }
  }
}

@compute @workgroup_size(256)
fn cutLow(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let slot = wid.x;
  let k = slotCount(slot);
  let found = cut(slot, lid, slot * BINS_PER_MODEL + HIGH_BINS, LOW_BINS, k, cuts[slot * 8u + 1u]);
  if (lid == 0u && slotActive(models[slot % chunk.models].kind, slot)) {
    cuts[slot * 8u + 2u] = (cuts[slot * 8u] << 16u) | found.x;
    cuts[slot * 8u + 3u] = k - found.y;
    cuts[slot * 8u + 4u] = atomicLoad(&histogram[slot * BINS_PER_MODEL + HIGH_BINS + found.x]);
  }
}

@compute @workgroup_size(256)
fn blockCounts(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = localIndex(wid, lid);
  // A two-dimensional grid has whole workgroups past the chunk's end: their block would index the
  // next selection's counts (a race that changes which tied entries are kept).
  if (localIndex(wid, 0u) >= chunk.length) { return; }
  let block = (chunk.start + j) / 256u;
  for (var slot = 0u; slot < 2u * chunk.models; slot++) {
    let t = slot % chunk.models;
    if (!slotActive(uniformKind(t, lid), slot)) { continue; }
    if (lid == 0u) { atomicStore(&counter, 0u); }
    workgroupBarrier();
    if (j < chunk.length && magnitudeOf(deltas[t * chunk.length + j]) == cuts[slot * 8u + 2u]) {
      atomicAdd(&counter, 1u);
    }
    workgroupBarrier();
    if (lid == 0u) { blockPrefix[slot * chunk.blocks + block] = atomicLoad(&counter); }
  }
}

@compute @workgroup_size(256)
fn scanBlocks(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let slot = wid.x;
  if (!slotActive(uniformKind(slot % chunk.models, lid), slot)) { return; }
  let perThread = (chunk.blocks + 255u) / 256u;
  let first = min(lid * perThread, chunk.blocks);
  let last = min(first + perThread, chunk.blocks);
  var sum = 0u;
  for (var i = first; i < last; i++) { sum += blockPrefix[slot * chunk.blocks + i]; }
  partial[lid] = sum;
  workgroupBarrier();
  if (lid == 0u) {
    var running = 0u;
    for (var i = 0u; i < 256u; i++) {
      let value = partial[i];
      partial[i] = running;
      running += value;
    }
  }
  workgroupBarrier();
  var running = partial[lid];
  for (var i = first; i < last; i++) {
    let value = blockPrefix[slot * chunk.blocks + i];
    blockPrefix[slot * chunk.blocks + i] = running;
    running += value;
  }
}

/**
 * How many invocations before this one in the workgroup raised their flag (an exclusive prefix
 * sum); afterwards partial[255] holds the workgroup's total.
 */
fn flagsBefore(flag: u32, lid: u32) -> u32 {
  workgroupBarrier();
  partial[lid] = flag;
  workgroupBarrier();
  for (var offset = 1u; offset < 256u; offset = offset << 1u) {
    var add = 0u;
    if (lid >= offset) { add = partial[lid - offset]; }
    workgroupBarrier();
    partial[lid] += add;
    workgroupBarrier();
  }
  return partial[lid] - flag;
}

/** A value every invocation of the workgroup agrees on, set by invocation 0. */
fn broadcast(value: u32, lid: u32) -> u32 {
  workgroupBarrier();
  if (lid == 0u) { sharedValue = value; }
  return workgroupUniformLoad(&sharedValue);
}

/**
 * In each row, keeps the k largest magnitudes (k from rowData; ties kept in index order, as the
 * CPU's keepLargest) and zeroes the rest: a radix selection over 8-bit digits of the magnitude,
 * then one ordered pass over the row in tiles of 256.
 */
@compute @workgroup_size(256)
fn rowSelect(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let localRow = wid.y * chunk.rowGroupsX + wid.x;
  if (localRow >= chunk.length / chunk.rowLength) { return; }
  let length = chunk.rowLength;
  let row = chunk.start / length + localRow;
  for (var t = 0u; t < chunk.models; t++) {
    if (uniformKind(t, lid) != ROW_TOP_K) { continue; }
    let first = t * chunk.length + localRow * length;
    let k = broadcast(rowData[models[t].rowDrop + row], lid);
    if (k >= length) { continue; }
    var threshold = 0u;
    var mask = 0u;
    var above = 0u;
    for (var digitPass = 0u; digitPass < 4u; digitPass++) {
      let shift = 24u - digitPass * 8u;
      atomicStore(&digits[lid], 0u);
      workgroupBarrier();
      for (var i = lid; i < length; i += 256u) {
        let m = magnitudeOf(deltas[first + i]);
        if ((m & mask) == threshold) { atomicAdd(&digits[(m >> shift) & 255u], 1u); }
      }
      workgroupBarrier();
      var digit = 255u;
      var count = above;
      if (lid == 0u) {
        while (digit > 0u && count + atomicLoad(&digits[digit]) < k) {
          count += atomicLoad(&digits[digit]);
          digit--;
        }
      }
      digit = broadcast(digit, lid);
      above = broadcast(count, lid);
      threshold = threshold | (digit << shift);
      mask = mask | (255u << shift);
    }
    let take = k - above;
    var carried = 0u;
    for (var tile = 0u; tile < length; tile += 256u) {
      let i = tile + lid;
      var v = 0.0;
      if (i < length) { v = deltas[first + i]; }
      let m = magnitudeOf(v);
      let flag = select(0u, 1u, i < length && m == threshold);
      let before = carried + flagsBefore(flag, lid);
      let keep = k > 0u && (m > threshold || (flag == 1u && before < take));
      if (i < length && !keep) { deltas[first + i] = 0.0; }
      carried += partial[255];
    }
  }
}

@compute @workgroup_size(256)
fn drops(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = localIndex(wid, lid);
  let inRange = j < chunk.length;
  let g = chunk.start + j;
  let block = g / 256u;
  for (var t = 0u; t < chunk.models; t++) {
    let kind = uniformKind(t, lid);
    let at = t * chunk.length + j;
    var v = 0.0;
    if (inRange) { v = deltas[at]; }
    let m = magnitudeOf(v);
    // Rank of this entry among the block's entries at each selection's threshold.
    var before = 0u;
    var beforeOutlier = 0u;
    if (slotActive(kind, t)) {
      before = flagsBefore(select(0u, 1u, inRange && m == cuts[t * 8u + 2u]), lid);
    }
    let outlierSlot = chunk.models + t;
    if (slotActive(kind, outlierSlot)) {
      beforeOutlier = flagsBefore(select(0u, 1u, inRange && m == cuts[outlierSlot * 8u + 2u]), lid);
    }
    if (inRange) {
      let rule = models[t];
      switch kind {
        case ZERO: { v = 0.0; }
        case MAGNITUDE: {
          v = select(0.0, v * rule.scale, selected(t, m, before, block));
        }
        case BREADCRUMBS: {
          let keep = selected(t, m, before, block) && !selected(outlierSlot, m, beforeOutlier, block);
          v = select(0.0, v, keep);
        }
        case BERNOULLI: {
          v = select(0.0, v * rule.scale, streamWord(rule.k0, rule.k1, g) < rule.threshold);
        }
        case ROW_BERNOULLI: {
          let row = g / chunk.rowLength;
          let threshold = rowData[rule.rowDrop + row];
          if (threshold != NONE) {
            let scale = bitcast<f32>(rowData[rule.rowDrop + chunk.rows + row]);
            v = select(0.0, v * scale, streamWord(rule.k0, rule.k1, g) < threshold);
          }
        }
        default: {}
      }
      if (rule.rowWeights != NONE) {
        v = v * bitcast<f32>(rowData[rule.rowWeights + g / chunk.rowLength]);
      }
      deltas[at] = v;
    }
  }
}

@compute @workgroup_size(256)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = localIndex(wid, lid);
  if (j >= chunk.length) { return; }
  let b = base[j];
  if (chunk.consensus == 0u) {
    var mixed = 0.0;
    for (var t = 0u; t < chunk.models; t++) {
      mixed = fma(models[t].weight, deltas[t * chunk.length + j], mixed);
    }
    base[j] = b + mixed * chunk.sumScale;
    return;
  }
  // The elected sign: by the sum of weighted entries (compensated, so its sign is the exact
  // sum's, as the CPU's float64 sum) or by counting signs; a tie elects +.
  var high = 0.0;
  var low = 0.0;
  for (var t = 0u; t < chunk.models; t++) {
    let w = models[t].weight;
    let d = deltas[t * chunk.length + j];
    let p = w * d;
    if (chunk.consensus == 1u) {
      let productError = fma(w, d, -p);
      let s = high + p;
      let bp = s - high;
      let sumError = (high - (s - bp)) + (p - bp);
      high = s;
      low += sumError + productError;
    } else {
      high += sign(p);
    }
  }
  let elected = select(-1.0, 1.0, high + low >= 0.0);
  var mixed = 0.0;
  var divisor = 0.0;
  for (var t = 0u; t < chunk.models; t++) {
    let w = models[t].weight;
    let v = w * deltas[t * chunk.length + j];
    if (v * elected > 0.0) {
      mixed += v;
      divisor += w;
    }
  }
  if (chunk.normalize != 0u && divisor != 0.0) { mixed = mixed / divisor; }
  base[j] = b + chunk.lambda * mixed;
}
`;
