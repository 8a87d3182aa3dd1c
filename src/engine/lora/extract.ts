/**
 * Extracting a LoRA adapter from a fine-tune (as mergekit-extract-lora does): for each matrix the
 * fine-tune changed, the best rank-r approximation of its task vector, Δ ≈ B·A, by a seeded
 * randomized SVD (a range finder with power iterations, then the exact SVD of the small projected
 * matrix); written as a PEFT adapter (B = U·√S, A = √S·Vᵀ, lora_alpha = r so the scale is 1). Tensors
 * that are not matrices cannot be low-rank and are reported, not written. A fine-tune of one of our
 * model families brings its task heads whole (PEFT's modules_to_save) and its config.json, so the
 * adapter runs as the fine-tune does. Read tensor by tensor.
 */
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint, TensorReader } from '../checkpoint/checkpoint';
import { decodeToFloat32, encodeFromFloat32, FloatDtype, isFloatDtype } from '../checkpoint/dtype';
import { createStagingDirectory, publishDirectory } from '../checkpoint/files';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../checkpoint/lora';
import { writeSafetensorsFile } from '../checkpoint/writer';
import { MergeInputError } from '../errors';
import { Random } from '../kernels/random';
import { checkHomologous } from '../merge/plan';
import type * as ModelModule from '../families/model';
import { readArchitecture } from '../merge/plan-inputs';

/** Symmetric eigen-decomposition by cyclic Jacobi rotations: (values, vectors as columns), largest first. */
function symmetricEigen(m: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = m.slice();
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => {
    for (let k = 0; k < n; k++) vectors[k * n + to] = v[k * n + from];
  });
  return { values, vectors };
}

/** Orthonormalises the k columns of q ([rows, k], row-major) in place (modified Gram–Schmidt; a dependent column becomes zero). */
function orthonormalize(q: Float64Array, rows: number, k: number): void {
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < j; i++) {
      let dot = 0;
      for (let r = 0; r < rows; r++) dot += q[r * k + i] * q[r * k + j];
      for (let r = 0; r < rows; r++) q[r * k + j] -= dot * q[r * k + i];
    }
    let norm = 0;
    for (let r = 0; r < rows; r++) norm += q[r * k + j] ** 2;
    norm = Math.sqrt(norm);
    for (let r = 0; r < rows; r++) q[r * k + j] = norm > 1e-300 ? q[r * k + j] / norm : 0;
  }
}

/** The rank-r factors of delta ([rows, columns]): B [rows, r] and A [r, columns], with Δ ≈ B·A. */
export function lowRankFactors(delta: Float64Array, rows: number, columns: number, rank: number, random: Random, powerIterations = 2): { a: Float32Array; b: Float32Array; singularValues: number[] } {
  const k = Math.min(rank + 8, rows, columns);
  // Y = Δ·Ω, Ω Gaussian [columns, k]; then (Δ·Δᵀ)^q·Y, orthonormalised after each product.
  const omega = new Float64Array(columns * k);
  for (let i = 0; i < omega.length; i += 2) {
    const u = Math.max(random.nextFloat(), 1e-300);
    const radius = Math.sqrt(-2 * Math.log(u));
    const angle = 2 * Math.PI * random.nextFloat();
    omega[i] = radius * Math.cos(angle);
    if (i + 1 < omega.length) omega[i + 1] = radius * Math.sin(angle);
  }
  const times = (x: Float64Array, width: number) => {
    // Δ [rows, columns] · x [columns, width]
    const out = new Float64Array(rows * width);
    for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) {
      const d = delta[r * columns + c];
      if (d === 0) continue;
      for (let j = 0; j < width; j++) out[r * width + j] += d * x[c * width + j];
    }
    return out;
  };
  const transposedTimes = (y: Float64Array, width: number) => {
    // Δᵀ [columns, rows] · y [rows, width]
    const out = new Float64Array(columns * width);
    for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) {
      const d = delta[r * columns + c];
      if (d === 0) continue;
      for (let j = 0; j < width; j++) out[c * width + j] += d * y[r * width + j];
    }
    return out;
  };
  let q = times(omega, k);
  orthonormalize(q, rows, k);
  for (let i = 0; i < powerIterations; i++) {
    const z = transposedTimes(q, k);
    orthonormalize(z, columns, k);
    q = times(z, k);
    orthonormalize(q, rows, k);
  }
  // Small = Qᵀ·Δ [k, columns] = (Δᵀ·Q)ᵀ; its SVD from the eigen-decomposition of Small·Smallᵀ [k, k].
  const smallT = transposedTimes(q, k); // [columns, k]
  const gram = new Float64Array(k * k);
  for (let c = 0; c < columns; c++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) gram[i * k + j] += smallT[c * k + i] * smallT[c * k + j];
  const { values, vectors } = symmetricEigen(gram, k);
  const r = Math.min(rank, k);
  const b = new Float32Array(rows * r);
  const a = new Float32Array(r * columns);
  const singularValues: number[] = [];
  for (let j = 0; j < r; j++) {
    const sigma = Math.sqrt(Math.max(values[j], 0));
    singularValues.push(sigma);
    const root = Math.sqrt(sigma);
    // u_j = Q·w_j (w_j the j-th eigenvector); v_j = Smallᵀ·w_j / σ_j.
    for (let row = 0; row < rows; row++) {
      let u = 0;
      for (let i = 0; i < k; i++) u += q[row * k + i] * vectors[i * k + j];
      b[row * r + j] = u * root;
    }
    for (let c = 0; c < columns; c++) {
      let v = 0;
      for (let i = 0; i < k; i++) v += smallT[c * k + i] * vectors[i * k + j];
      a[j * columns + c] = sigma > 0 ? (v / sigma) * root : 0;
    }
  }
  return { a, b, singularValues };
}

export interface ExtractOptions {
  base: string;
  finetune: string;
  out: string;
  rank: number;
  /** Seed of the randomized SVD's test vectors (recorded in the adapter's config). */
  seed?: number;
  overwrite?: boolean;
  log?: (line: string) => void;
}

export interface ExtractResult {
  modules: number;
  /** Modules written whole (modules_to_save): the heads of a family fine-tune's tasks. */
  saved: string[];
  /** Changed tensors that are not matrices, left out. */
  skipped: string[];
  /** Largest relative error ‖Δ − B·A‖ / ‖Δ‖ over the modules. */
  worstRelativeError: number;
}

/** Writes OUT as a PEFT adapter of FINETUNE against BASE (staged, published whole). */
export function extractLora(options: ExtractOptions): ExtractResult {
  if (!Number.isInteger(options.rank) || options.rank < 1) throw new MergeInputError(`--rank must be a positive integer, got ${options.rank}`);
  const seed = options.seed ?? 0;
  const base = openCheckpoint(options.base);
  const finetune = openCheckpoint(options.finetune);
  // A fine-tune of one of our families has heads of its own tasks: they go whole (modules_to_save),
  // with its config.json, so that the adapter runs as the fine-tune.
  // Loaded only for family models: extracting from other checkpoints never pays for loading TensorFlow.js.
  const arch = readArchitecture(finetune) as { apl_family?: unknown } | undefined;
  const family = typeof arch?.apl_family === 'string' ? (require('../families/model') as typeof ModelModule).modelFamilyOf(finetune.directory) : { unknown: 'not a family model' };
  const heads = 'unknown' in family ? [] : Object.keys(family.config.tasks).flatMap((task) => family.family.headShapes(family.config, task).map((s) => s.name));
  const isHead = (name: string) => !('unknown' in family) && family.family.isHeadTensor(name);
  checkHomologous(base, finetune, isHead);
  const reader = new TensorReader();
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: Uint8Array }> = [];
  const skipped: string[] = [];
  const targets = new Set<string>();
  const saved = new Set<string>();
  let worst = 0;
  try {
    for (const name of base.names) {
      const location = base.tensors.get(name)!;
      if (!isFloatDtype(location.dtype) || isHead(name)) continue;
      const before = decodeToFloat32(reader.read(location), location.dtype as FloatDtype).slice();
      const other = finetune.tensors.get(name)!;
      const after = decodeToFloat32(reader.read(other), other.dtype as FloatDtype);
      const delta = Float64Array.from(after, (v, i) => v - before[i]);
      if (delta.every((d) => d === 0)) continue;
      if (location.shape.length !== 2) {
        skipped.push(name);
        continue;
      }
      const [rows, columns] = location.shape;
      const { a, b } = lowRankFactors(delta, rows, columns, options.rank, new Random(seed, `extract-lora ${name}`));
      const r = a.length / columns;
      // How well B·A reproduces Δ.
      let residual = 0;
      let total = 0;
      for (let o = 0; o < rows; o++) for (let i = 0; i < columns; i++) {
        let approx = 0;
        for (let k = 0; k < r; k++) approx += b[o * r + k] * a[k * columns + i];
        residual += (delta[o * columns + i] - approx) ** 2;
        total += delta[o * columns + i] ** 2;
      }
      worst = Math.max(worst, Math.sqrt(residual / total));
      const module = name.replace(/\.weight$/, '');
      targets.add(module.split('.').pop()!);
      tensors.push({ name: `base_model.model.${module}.lora_A.weight`, dtype: 'F32', shape: [r, columns], data: encodeFromFloat32(a, 'F32') });
      tensors.push({ name: `base_model.model.${module}.lora_B.weight`, dtype: 'F32', shape: [rows, r], data: encodeFromFloat32(b, 'F32') });
      options.log?.(`${name}: rank ${r}, relative error ${Math.sqrt(residual / total).toExponential(2)}`);
    }
    if (tensors.length === 0) throw new MergeInputError(`${options.finetune} changes no matrix of ${options.base}: there is nothing to extract`);
    for (const name of heads) {
      const location = finetune.tensors.get(name);
      if (!location) throw new MergeInputError(`${options.finetune}: has no tensor "${name}", the head its config.json's tasks name`);
      const values = decodeToFloat32(reader.read(location), location.dtype as FloatDtype);
      saved.add(name.slice(0, name.lastIndexOf('.')));
      tensors.push({ name: `base_model.model.${name}`, dtype: 'F32', shape: [...location.shape], data: encodeFromFloat32(values, 'F32') });
    }
  } finally {
    reader.close();
  }
  const staging = createStagingDirectory(options.out);
  try {
    writeSafetensorsFile(join(staging, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
    const config = {
      peft_type: 'LORA', r: options.rank, lora_alpha: options.rank, target_modules: [...targets].sort(), modules_to_save: saved.size > 0 ? [...saved].sort() : null,
      base_model_name_or_path: options.base, bias: 'none', fan_in_fan_out: false, use_rslora: false, apl_merge_extract_seed: seed,
    };
    writeFileSync(join(staging, ADAPTER_CONFIG), JSON.stringify(config, null, 2) + '\n');
    if (heads.length > 0) copyFileSync(join(finetune.directory, 'config.json'), join(staging, 'config.json'));
    publishDirectory(staging, options.out, options.overwrite ?? false);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return { modules: (tensors.length - heads.length) / 2, saved: [...saved].sort(), skipped, worstRelativeError: worst };
}
