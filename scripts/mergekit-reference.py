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
Every operation runs in float32 in the same order as mergekit's torch code.

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
    }
    write_safetensors(os.path.join(ROOT, 'scaled', 'model.safetensors'), {n: (base[n] * np.float32(1.5)).astype(np.float32) for n in SHAPES})
    for name, compute in cases.items():
        write_safetensors(os.path.join(ROOT, 'expected', f'{name}.safetensors'), {n: compute(n) for n in SHAPES})


if __name__ == '__main__':
    main()
