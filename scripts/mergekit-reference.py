#!/usr/bin/env python3
"""Regenerates test/fixtures/mergekit: small float32 checkpoints and the merges that mergekit's
algorithms produce from them, for test/mergekit-parity.test.ts.

mergekit (arcee-ai/mergekit) cannot be installed offline, so this restates, in NumPy float32,
the arithmetic of its `linear`, `task_arithmetic`, `ties`, `slerp`, `nearswap` and `model_stock`
methods (merge_methods/linear.py, generalized_task_arithmetic.py and sparsify.py's `magnitude`,
slerp.py, nearswap.py, model_stock.py):
  linear           sum_i w_i * x_i, divided by sum_i w_i when normalize (default true)
  task_arithmetic  base + sum_i w_i * (x_i - base)            (normalize default false)
  ties             delta_i trimmed to its top int(density*n) magnitudes; weighted deltas
                   w_i*delta_i; elected sign = (sum of weighted deltas >= 0) ? +1 : -1;
                   mixed = sum of weighted deltas whose sign equals the elected sign,
                   divided by the sum of the weights of those (0 -> 1); base + mixed
  slerp            v0 = base, v1 = the other; each divided by its norm when the norm > 1e-8;
                   dot of the normalised; |dot| > 0.9995: (1-t)*v0 + t*v1; else
                   theta = arccos(dot): sin(theta*(1-t))/sin(theta)*v0 + sin(theta*t)/sin(theta)*v1
  nearswap         w = clamp(t / |v0 - v1|, 0, 1) (NaN and Inf -> 1); w*v1 + (1-w)*v0
  model_stock      offsets d_i = x_i - base (per row of the last dimension with filter_wise);
                   cos = mean over pairs of clamp(d_i.d_j / max(|d_i||d_j|, 1e-6), -1, 1);
                   t = N*cos / (1 + (N-1)*cos); t*mean(x_i) + (1-t)*base
  nuslerp          t = w2/(w1+w2); per vector (whole tensor, rows, or columns): theta from the
                   vectors divided by max(norm, 1e-7); |sin theta| < 1e-8: lerp; else
                   (sin((1-t)theta)*v0 + sin(t*theta)*v1)/sin theta; with a base, of task vectors
  multislerp       weights / their sum; units x/(|x|+1e-8); mean direction; tangent vectors at it,
                   their weighted sum T; mean*cos|T| + T*sin|T|/|T| (|T| + 1e-8), times the
                   weighted mean norm; with a base, of task vectors, added back
  karcher          equal-weight Riemannian mean of the unit directions (at most 10 fixed-point
                   steps, tol 1e-5), times the mean norm
  sce              deltas; keep the top select_topk of positions by variance across models (of
                   those with non-zero variance); weights = mean square of each delta, normalised;
                   keep deltas whose sign equals that of the deltas' sum; weighted mean; + base
  passthrough      the one model's tensor times scale
  arcee_fusion     importance = |x - base| * KL(softmax(x) + 1e-8 || softmax(base) + 1e-8) per row;
                   x where importance >= median + 1.5*(q3 - q1) (sorted[int(q*(n-1))]), else base
                   (in float64: see arcee_fusion below)
Every operation runs in float32 in the same order as mergekit's torch code, except where said.
Usage: python3 scripts/mergekit-reference.py   (needs numpy; writes the fixtures in place)
"""
import json
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'mergekit')
SHAPES = {'layers.0.weight': (64, 48), 'layers.0.bias': (48,), 'head.weight': (10, 48)}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(array.shape), 'data_offsets': [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(',', ':'))
    text += ' ' * ((8 - len(text) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text.encode())
        for blob in blobs:
            f.write(blob)


def magnitude(delta, density):
    if density >= 1:
        return delta
    k = int(density * delta.size)
    flat = np.abs(delta).reshape(-1)
    keep = np.argsort(-flat, kind='stable')[:k]
    mask = np.zeros(delta.size, dtype=np.float32)
    mask[keep] = 1
    return delta * mask.reshape(delta.shape)


def linear(models, weights, normalize=True):
    w = np.array(weights, dtype=np.float32).reshape((-1,) + (1,) * models[0].ndim)
    stacked = np.stack(models).astype(np.float32)
    res = (w * stacked).sum(axis=0, dtype=np.float32)
    return res / w.sum(axis=0, dtype=np.float32) if normalize else res


def task_arithmetic(base, models, weights):
    deltas = np.stack([m - base for m in models]).astype(np.float32)
    w = np.array(weights, dtype=np.float32).reshape((-1,) + (1,) * base.ndim)
    return (base + (deltas * w).sum(axis=0, dtype=np.float32)).astype(np.float32)


def ties(base, models, weights, densities):
    deltas = np.stack([magnitude((m - base).astype(np.float32), d) for m, d in zip(models, densities)])
    w = np.array(weights, dtype=np.float32).reshape((-1,) + (1,) * base.ndim)
    weighted = deltas * w
    sign = np.sign(weighted)
    majority = np.where(weighted.sum(axis=0, dtype=np.float32) >= 0, 1, -1).astype(np.float32)
    mask = (sign == majority).astype(np.float32)
    mixed = (weighted * mask).sum(axis=0, dtype=np.float32)
    divisor = (w * mask).sum(axis=0, dtype=np.float32)
    divisor[divisor == 0] = 1
    return (base + mixed / divisor).astype(np.float32)


def slerp(t, v0, v1):
    t = np.float32(t)
    def normalized(v):
        norm = np.linalg.norm(v)
        return v / norm if norm > 1e-8 else v
    dot = np.sum(normalized(v0) * normalized(v1), dtype=np.float32)
    if np.abs(dot) > 0.9995:
        return ((1 - t) * v0 + t * v1).astype(np.float32)
    theta = np.arccos(dot)
    s0 = np.sin(theta - theta * t) / np.sin(theta)
    s1 = np.sin(theta * t) / np.sin(theta)
    return (s0 * v0 + s1 * v1).astype(np.float32)


def nearswap(t, v0, v1):
    with np.errstate(divide='ignore', invalid='ignore'):
        w = np.float32(t) / np.abs(v0 - v1)
    w = np.clip(np.nan_to_num(w, nan=1.0, posinf=1.0, neginf=1.0), 0, 1).astype(np.float32)
    return (w * v1 + (1 - w) * v0).astype(np.float32)


def model_stock(base, models, filter_wise=False):
    shape = base.shape
    w0 = base.reshape(1, -1) if not filter_wise or base.ndim == 1 else base
    ws = [m.reshape(w0.shape) for m in models]
    offsets = [w - w0 for w in ws]
    cosines = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            norms = np.linalg.norm(offsets[i], axis=-1) * np.linalg.norm(offsets[j], axis=-1)
            cosines.append(np.clip((offsets[i] * offsets[j]).sum(axis=-1) / np.maximum(norms, 1e-6), -1, 1))
    cos = np.mean(np.stack(cosines), axis=0)[..., None].astype(np.float32)
    n = np.float32(len(ws))
    t = (n * cos) / (1 + (n - 1) * cos)
    average = sum(ws) / n
    return (t * average + (1 - t) * w0).reshape(shape).astype(np.float32)


def nuslerp(w0, w1, v0, v1, base=None, flatten=True, row_wise=False):
    t = np.float32(0.5 if abs(w0 + w1) < 1e-6 else w1 / (w0 + w1))
    if base is not None:
        return (base + nuslerp(w0, w1, v0 - base, v1 - base, None, flatten, row_wise)).astype(np.float32)
    shape = v0.shape
    if flatten:
        a, b = v0.reshape(1, -1), v1.reshape(1, -1)
    elif row_wise:
        a, b = np.swapaxes(v0, 0, -1), np.swapaxes(v1, 0, -1)
    else:
        a, b = v0, v1
    a2 = a if a.ndim > 1 else a.reshape(1, -1)
    b2 = b if b.ndim > 1 else b.reshape(1, -1)
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-7))
    cos = np.sum(unit(a2) * unit(b2), axis=-1, keepdims=True)
    theta = np.arccos(np.clip(cos, -1, 1))
    sin = np.sin(theta)
    with np.errstate(divide='ignore', invalid='ignore'):
        res = (np.sin((1 - t) * theta) * a2 + np.sin(t * theta) * b2) / sin
    colinear = (np.abs(sin) < 1e-8).reshape(-1)
    res[colinear] = (1 - t) * a2[colinear] + t * b2[colinear]
    res = res.reshape(a.shape)
    if not flatten and row_wise:
        res = np.swapaxes(res, 0, -1)
    return res.reshape(shape).astype(np.float32)


def multislerp(tensors, weights, base=None, eps=1e-8):
    x = np.stack(tensors).astype(np.float32)
    if base is not None:
        x = x - base
    flat = x.reshape(x.shape[0], -1)
    w = np.array(weights, dtype=np.float32)
    w = w / w.sum()
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    units = flat / (norms + np.float32(eps))
    mean = (units * w.reshape(-1, 1)).sum(0)
    mean = mean / np.linalg.norm(mean)
    dots = (units * mean).sum(-1, keepdims=True)
    tangent = ((units - dots * mean) * w.reshape(-1, 1)).sum(0)
    tn = np.linalg.norm(tangent) + np.float32(eps)
    res = (mean * np.cos(tn) + tangent * (np.sin(tn) / tn)) * (norms.reshape(-1) * w).sum()
    res = res.reshape(x.shape[1:])
    return (res + base if base is not None else res).astype(np.float32)


def karcher(tensors, max_iter=10, tol=1e-5):
    alphas = [1.0 / len(tensors)] * len(tensors)
    norms = [float(np.linalg.norm(t)) for t in tensors]
    units = [t / n if n > 0 else np.zeros_like(t) for t, n in zip(tensors, norms)]
    valid = [i for i, n in enumerate(norms) if n > tol]
    share = [1.0 / len(valid)] * len(valid)
    vu = [units[i] for i in valid]
    mean = sum(a * u for a, u in zip(share, vu))
    mn = float(np.linalg.norm(mean))
    mean = vu[0].copy() if mn < tol else mean / mn
    for _ in range(max_iter):
        tangent = np.zeros_like(mean)
        for a, u in zip(share, vu):
            dot = np.clip(np.dot(mean.ravel(), u.ravel()), -1.0, 1.0)
            theta = np.arccos(dot)
            if theta < tol:
                continue
            tangent = tangent + a * (theta / np.sin(theta)) * (u - dot * mean)
        tn = float(np.linalg.norm(tangent))
        if tn < tol:
            break
        mean = np.cos(tn) * mean + np.sin(tn) * (tangent / tn)
        un = float(np.linalg.norm(mean))
        if un > tol:
            mean = mean / un
    return (sum(a * n for a, n in zip(alphas, norms)) * mean).astype(np.float32)


def sce(base, models, select_topk=1.0):
    deltas = np.stack([m - base for m in models]).astype(np.float32)
    if select_topk < 1:
        variance = np.var(deltas, axis=0)
        k = int(abs(select_topk) * np.count_nonzero(variance))
        mask = np.zeros(variance.size, dtype=np.float32)
        if k > 0:
            mask[np.argsort(-variance.reshape(-1), kind='stable')[:k]] = 1
        deltas = deltas * mask.reshape(variance.shape)
    weights = np.array([np.sum(d ** 2) / d.size for d in deltas], dtype=np.float32)
    weights = weights / weights.sum() if weights.sum() != 0 else np.full(len(deltas), 1 / len(deltas), dtype=np.float32)
    weights = weights.reshape((-1,) + (1,) * base.ndim)
    majority = np.where(deltas.sum(axis=0) >= 0, 1, -1).astype(np.float32)
    erased = weights * (np.sign(deltas) == majority).astype(np.float32)
    mixed = (deltas * erased).sum(axis=0)
    divisor = erased.sum(axis=0)
    divisor[divisor == 0] = 1
    return (base + mixed / divisor).astype(np.float32)


def arcee_fusion(base32, x32):
    # In float64: in float32 the KL of two nearly equal softmaxes is mostly rounding noise, so which
    # entries pass the threshold would depend on the order of float32 operations, not on the method.
    base, x = base32.astype(np.float64), x32.astype(np.float64)
    def softmax(v):
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    p = softmax(x) + 1e-8
    q = softmax(base) + 1e-8
    kl = np.sum(p * np.log(p / q), axis=-1)
    importance = np.abs(x - base) * (kl[..., None] if x.ndim > 1 else kl)
    s = np.sort(importance.reshape(-1))
    q1, median, q3 = (s[int(q * (s.size - 1))] for q in (0.25, 0.5, 0.75))
    mask = (importance >= median + 1.5 * (q3 - q1)).astype(np.float32)
    return (base + (x - base) * mask).astype(np.float32)


def main():
    rng = np.random.default_rng(20241126)
    base = {n: (rng.standard_normal(s) * 0.02).astype(np.float32) for n, s in SHAPES.items()}
    fts = [{n: (base[n] + rng.standard_normal(s) * 0.005).astype(np.float32) for n, s in SHAPES.items()} for _ in range(3)]
    write_safetensors(os.path.join(ROOT, 'base', 'model.safetensors'), base)
    for i, ft in enumerate(fts, 1):
        write_safetensors(os.path.join(ROOT, f'ft{i}', 'model.safetensors'), ft)
    cases = {
        'linear': (lambda n: linear([base[n]] + [f[n] for f in fts], [0.1, 0.2, 0.5, 0.3])),
        'linear_unnormalized': (lambda n: linear([f[n] for f in fts], [0.5, 0.25, 0.25], normalize=False)),
        'task_arithmetic': (lambda n: task_arithmetic(base[n], [f[n] for f in fts], [1.0, 0.5, -0.3])),
        'ties': (lambda n: ties(base[n], [f[n] for f in fts], [1.0, 0.7, 0.4], [0.5, 0.3, 0.8])),
        # t by filter: 0.8 for biases, 0.3 elsewhere.
        'slerp': (lambda n: slerp(0.8 if 'bias' in n else 0.3, base[n], fts[0][n])),
        # A model 1.5 times the base is colinear with it: SLERP falls back to linear interpolation.
        'slerp_colinear': (lambda n: slerp(0.25, base[n], (base[n] * np.float32(1.5)).astype(np.float32))),
        'nearswap': (lambda n: nearswap(0.004, base[n], fts[1][n])),
        'model_stock': (lambda n: model_stock(base[n], [f[n] for f in fts])),
        'model_stock_filter_wise': (lambda n: model_stock(base[n], [f[n] for f in fts], filter_wise=True)),
        'nuslerp': (lambda n: nuslerp(1.0, 3.0, fts[0][n], fts[1][n])),
        'nuslerp_rows': (lambda n: nuslerp(2.0, 1.0, fts[0][n], fts[2][n], base=base[n], flatten=False)),
        'nuslerp_columns': (lambda n: nuslerp(1.0, 1.0, fts[1][n], fts[2][n], flatten=False, row_wise=True)),
        'multislerp': (lambda n: multislerp([f[n] for f in fts], [0.5, 0.3, 0.2], base=base[n])),
        'karcher': (lambda n: karcher([f[n] for f in fts])),
        'sce': (lambda n: sce(base[n], [f[n] for f in fts])),
        'sce_top_half': (lambda n: sce(base[n], [f[n] for f in fts], select_topk=0.5)),
        'passthrough': (lambda n: (fts[2][n] * np.float32(0.5)).astype(np.float32)),
        'arcee_fusion': (lambda n: arcee_fusion(base[n], fts[0][n])),
    }
    write_safetensors(os.path.join(ROOT, 'scaled', 'model.safetensors'), {n: (base[n] * np.float32(1.5)).astype(np.float32) for n in SHAPES})
    for name, compute in cases.items():
        write_safetensors(os.path.join(ROOT, 'expected', f'{name}.safetensors'), {n: compute(n) for n in SHAPES})


if __name__ == '__main__':
    main()
