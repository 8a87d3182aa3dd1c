#!/usr/bin/env python3
"""TIES, SLERP and Model Stock in PyTorch on the CPU, over the checkpoints bench/merge-throughput.ts
generates: the same math as apl-merge's (mergekit's, for SLERP and Model Stock), timed end to end
(files read, merged, the merged file written), for the README's comparison.

    python3 scripts/torch-cpu-merge.py .cache/bench/ties-24x4194304/models [THREADS] [--durable]

--durable also does what apl-merge does for every output: fsync the file and hash it (sha256).

Reads and writes safetensors with NumPy (the `safetensors` package is not needed). Prints JSON.
"""
import hashlib
import json
import os
import struct
import sys
import time

import numpy as np
import torch


def read_safetensors(path):
    with open(path, 'rb') as f:
        (length,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(length))
    data = np.memmap(path, dtype=np.uint8, mode='r', offset=8 + length)
    tensors = {}
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        begin, end = entry['data_offsets']
        tensors[name] = torch.from_numpy(np.array(data[begin:end]).view(np.float32).reshape(entry['shape']))
    return tensors


def write_safetensors(path, tensors, durable=False):
    header, offset = {}, 0
    for name, t in tensors.items():
        size = t.numel() * 4
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for t in tensors.values():
            f.write(t.contiguous().numpy().tobytes())
        if durable:
            f.flush()
            os.fsync(f.fileno())
    if durable:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 24), b''):
                digest.update(chunk)


def ties(base, models, density=0.2):
    deltas = []
    for m in models:
        d = m - base
        k = int(density * d.numel())
        threshold = d.abs().flatten().kthvalue(d.numel() - k + 1).values
        deltas.append(torch.where(d.abs() >= threshold, d, torch.zeros_like(d)))
    stacked = torch.stack(deltas)
    sign = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = (stacked * sign) > 0
    mixed = (stacked * agree).sum(0)
    divisor = agree.sum(0).to(base.dtype)
    return base + torch.where(divisor != 0, mixed / divisor.clamp(min=1), mixed)


def slerp(base, models, t=0.5):
    v0, v1 = base, models[0]
    dot = torch.sum((v0 / v0.norm()) * (v1 / v1.norm()))
    if dot.abs() > 0.9995:
        return (1 - t) * v0 + t * v1
    theta = torch.arccos(dot)
    return (torch.sin(theta * (1 - t)) * v0 + torch.sin(theta * t) * v1) / torch.sin(theta)


def model_stock(base, models):
    offsets = [m.flatten() - base.flatten() for m in models]
    cosines = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            cosines.append(((offsets[i] * offsets[j]).sum() / (offsets[i].norm() * offsets[j].norm()).clamp(min=1e-6)).clamp(-1, 1))
    cos = torch.stack(cosines).mean()
    n = len(models)
    t = n * cos / (1 + (n - 1) * cos)
    return t * (sum(models) / n) + (1 - t) * base


def main(models_dir, threads, durable):
    torch.set_num_threads(threads)
    rows = []
    for method, fn, count in [('ties', ties, 3), ('slerp', slerp, 1), ('model_stock', model_stock, 3)]:
        paths = [os.path.join(models_dir, 'base', 'model.safetensors')] + [os.path.join(models_dir, f'finetune-{i + 1}', 'model.safetensors') for i in range(count)]
        times = []
        for _ in range(3):
            started = time.perf_counter()
            loaded = [read_safetensors(p) for p in paths]
            out = {name: fn(loaded[0][name], [m[name] for m in loaded[1:]]) for name in loaded[0]}
            write_safetensors(os.path.join(models_dir, f'torch-{method}.safetensors'), out, durable)
            times.append(time.perf_counter() - started)
            del loaded, out
        times.sort()
        traffic = sum(os.path.getsize(p) for p in paths) + os.path.getsize(os.path.join(models_dir, f'torch-{method}.safetensors'))
        rows.append({'method': method, 'engine': f'PyTorch {torch.__version__} CPU, {threads} thread(s){", fsync + sha256" if durable else ""}', 'seconds': times[1], 'throughputGBs': traffic / times[1] / 1e9})
    print(json.dumps(rows, indent=2))


if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if a != '--durable']
    main(args[0], int(args[1]) if len(args) > 1 else os.cpu_count(), '--durable' in sys.argv)
