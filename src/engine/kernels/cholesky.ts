/** Linear systems with a symmetric positive definite matrix, by Cholesky factorisation (RegMean's normal equations). */

/**
 * The lower-triangular L with L·Lᵀ = A (n×n, row-major; only A's lower triangle is read), or the
 * index of the pivot that is not positive (A is not positive definite there).
 */
export function cholesky(a: Float64Array, n: number): { lower: Float64Array } | { failedAt: number } {
  const lower = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j];
      for (let k = 0; k < j; k++) sum -= lower[i * n + k] * lower[j * n + k];
      if (i === j) {
        if (!(sum > 0)) return { failedAt: i };
        lower[i * n + i] = Math.sqrt(sum);
      } else {
        lower[i * n + j] = sum / lower[j * n + j];
      }
    }
  }
  return { lower };
}

/** Solves A·x = b for each of the `count` right-hand sides b (rows of `rhs`, length n each), given A's Cholesky factor. */
export function choleskySolveRows(lower: Float64Array, n: number, rhs: Float64Array, count: number): Float64Array {
  const solution = new Float64Array(count * n);
  const y = new Float64Array(n);
  // Lᵀ row by row, so that the back substitution reads memory in order.
  const upper = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k <= i; k++) upper[k * n + i] = lower[i * n + k];
  for (let r = 0; r < count; r++) {
    const offset = r * n;
    // L·y = b
    for (let i = 0; i < n; i++) {
      let sum = rhs[offset + i];
      for (let k = 0; k < i; k++) sum -= lower[i * n + k] * y[k];
      y[i] = sum / lower[i * n + i];
    }
    // Lᵀ·x = y
    for (let i = n - 1; i >= 0; i--) {
      let sum = y[i];
      for (let k = i + 1; k < n; k++) sum -= upper[i * n + k] * solution[offset + k];
      solution[offset + i] = sum / upper[i * n + i];
    }
  }
  return solution;
}
