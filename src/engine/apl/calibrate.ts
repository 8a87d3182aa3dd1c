/**
 * From importance to drops and weights (APL.md, "From importance to drops and weights").
 *
 * Importance is standardised per task first (size-weighted mean 0, standard deviation 1), so the
 * temperatures are dimensionless and comparable across tasks, estimators and partition levels.
 *  - keep-rates: r_k = min(1, c · exp(z_k / τ1)) with c chosen so that the size-weighted mean of r
 *    is the target density d. τ1 → ∞ gives DARE's uniform rate d; τ1 → 0 keeps whole partitions
 *    in order of importance until the budget is spent.
 *  - weights: w_{t,k} = T · softmax_t(z_{t,k} / τ2): tasks compete for each partition; τ2 = ∞
 *    gives every task weight 1.
 */

export function standardize(importance: ArrayLike<number>, sizes: ArrayLike<number>): Float64Array {
  let total = 0;
  let mean = 0;
  for (let k = 0; k < importance.length; k++) {
    total += sizes[k];
    mean += sizes[k] * importance[k];
  }
  mean /= total;
  let variance = 0;
  for (let k = 0; k < importance.length; k++) variance += sizes[k] * (importance[k] - mean) ** 2;
  const std = Math.sqrt(variance / total);
  const z = new Float64Array(importance.length);
  for (let k = 0; k < importance.length; k++) z[k] = std > 0 ? (importance[k] - mean) / std : 0;
  return z;
}

export function keepRates(importance: ArrayLike<number>, sizes: ArrayLike<number>, density: number, tau: number): Float64Array {
  const count = importance.length;
  const rates = new Float64Array(count);
  if (density >= 1) return rates.fill(1);
  if (density <= 0) return rates;
  let total = 0;
  for (let k = 0; k < count; k++) total += sizes[k];
  const budget = density * total;
  const z = standardize(importance, sizes);
  if (tau === 0) {
    // Whole partitions by rank; the one at the boundary is kept in part.
    const order = Array.from({ length: count }, (_, k) => k).sort((a, b) => z[b] - z[a] || a - b);
    let left = budget;
    for (const k of order) {
      rates[k] = Math.max(0, Math.min(1, left / sizes[k]));
      left -= rates[k] * sizes[k];
    }
    return rates;
  }
  if (!Number.isFinite(tau)) return rates.fill(density);
  let zMax = -Infinity;
  for (const v of z) zMax = Math.max(zMax, v);
  const scores = z.map((v) => Math.exp((v - zMax) / tau));
  const kept = (c: number) => {
    let sum = 0;
    for (let k = 0; k < count; k++) sum += sizes[k] * Math.min(1, c * scores[k]);
    return sum;
  };
  // kept(c) rises monotonically from 0 to total: bisect on log c.
  let low = -60;
  let high = 60 + Math.max(0, -Math.log(Math.min(...scores.filter((s) => s > 0), 1)));
  for (let i = 0; i < 200; i++) {
    const mid = (low + high) / 2;
    if (kept(Math.exp(mid)) < budget) low = mid;
    else high = mid;
  }
  const c = Math.exp(high);
  for (let k = 0; k < count; k++) rates[k] = Math.min(1, c * scores[k]);
  return rates;
}

/** Per partition, each task's weight: T · softmax over tasks of z / τ2. */
export function mergeWeights(importances: ArrayLike<number>[], sizes: ArrayLike<number>, tau: number): Float64Array[] {
  const tasks = importances.length;
  const count = sizes.length;
  const weights = importances.map(() => new Float64Array(count).fill(1));
  if (!Number.isFinite(tau) || tasks < 2) return weights;
  const z = importances.map((imp) => standardize(imp, sizes));
  for (let k = 0; k < count; k++) {
    let max = -Infinity;
    for (let t = 0; t < tasks; t++) max = Math.max(max, z[t][k] / tau);
    let sum = 0;
    for (let t = 0; t < tasks; t++) sum += Math.exp(z[t][k] / tau - max);
    for (let t = 0; t < tasks; t++) weights[t][k] = (tasks * Math.exp(z[t][k] / tau - max)) / sum;
  }
  return weights;
}

/**
 * Whether a score keeps its sign — the exact loss increase, or −g·δ — so that a negative value means
 * the model is better without the partition (KL divergences and |g·δ| are never negative).
 */
export const isSignedScore = (estimator: string, metric: string, gradientForm: string): boolean => (estimator === 'exact' ? metric === 'loss' : estimator === 'gradient' && gradientForm === 'signed');
