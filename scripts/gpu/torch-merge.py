#!/usr/bin/env python3
"""Linear, task arithmetic, TIES, DARE-TIES and Breadcrumbs-TIES in PyTorch on a CUDA device, over the synthetic checkpoints
bench/gpu-merge.ts writes: the same math as apl-merge's recipes, timed end to end (files in, merged
file out) and with the data already on the card (kernel alone). Prints JSON rows for the bench.

    python3 scripts/gpu/torch-merge.py MODELS_DIR FINE_TUNES
"""
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file, save_file


def top_threshold(magnitudes, k):
    """The k-th largest magnitude (entries >= it are the top k, up to ties)."""
    flat = magnitudes.flatten()
    return flat.kthvalue(flat.numel() - k + 1).values


def merge(method, base, models):
    weights = [0.5] * len(models)
    if method == 'linear':
        return sum(w * m for w, m in zip(weights, models)) / sum(weights)
    deltas = [m - base for m in models]
    if method == 'breadcrumbs_ties':
        # the largest gamma fraction (outliers) and the smallest go; density remains
        trimmed = []
        for d in deltas:
            n = d.numel()
            outliers = int(0.01 * n)
            upper = outliers + int(0.3 * n)
            magnitude = d.abs()
            keep = (magnitude >= top_threshold(magnitude, upper)) & (magnitude < top_threshold(magnitude, outliers) if outliers > 0 else True)
            trimmed.append(torch.where(keep, d, torch.zeros_like(d)))
        deltas = trimmed
    if method == 'ties':
        trimmed = []
        for d in deltas:
            k = int(0.3 * d.numel())
            trimmed.append(torch.where(d.abs() >= top_threshold(d.abs(), k), d, torch.zeros_like(d)))
        deltas = trimmed
    if method == 'dare_ties':
        deltas = [torch.where(torch.rand_like(d) < 0.3, d / 0.3, torch.zeros_like(d)) for d in deltas]
    stacked = torch.stack([w * d for w, d in zip(weights, deltas)])
    if method == 'task_arithmetic':
        return base + stacked.sum(0)
    sign = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = (stacked * sign) > 0
    mixed = (stacked * agree).sum(0)
    divisor = (torch.tensor(weights, device=base.device).view(-1, *[1] * base.dim()) * agree).sum(0)
    return base + torch.where(divisor != 0, mixed / divisor.clamp(min=1e-30), mixed)


def main(models_dir, fine_tunes):
    if not torch.cuda.is_available():
        raise SystemExit('no CUDA device')
    device = 'cuda'
    paths = [os.path.join(models_dir, 'base', 'model.safetensors')] + [
        os.path.join(models_dir, f'finetune-{i + 1}', 'model.safetensors') for i in range(fine_tunes)]
    input_bytes = sum(os.path.getsize(p) for p in paths)
    rows = []
    for method in ['linear', 'task_arithmetic', 'ties', 'dare_ties', 'breadcrumbs_ties']:
        # end to end: read, upload, merge, download, write
        for attempt in range(2):
            torch.cuda.synchronize()
            started = time.perf_counter()
            loaded = [load_file(p) for p in paths]
            out = {}
            for name in loaded[0]:
                base = loaded[0][name].to(device)
                merged = merge(method, base, [m[name].to(device) for m in loaded[1:]])
                out[name] = merged.cpu()
            save_file(out, os.path.join(models_dir, f'torch-{method}.safetensors'))
            end_to_end = time.perf_counter() - started
        # kernel alone: everything resident on the card
        resident = [{k: v.to(device) for k, v in load_file(p).items()} for p in paths]
        for attempt in range(2):
            torch.cuda.synchronize()
            started = time.perf_counter()
            for name in resident[0]:
                merge(method, resident[0][name], [m[name] for m in resident[1:]])
            torch.cuda.synchronize()
            kernel = time.perf_counter() - started
        del resident
        torch.cuda.empty_cache()
        rows.append({'method': method, 'engine': f'PyTorch {torch.__version__} ({torch.cuda.get_device_name()})',
                     'endToEndGBps': input_bytes / end_to_end / 1e9, 'kernelGBps': input_bytes / kernel / 1e9})
    print(json.dumps(rows))


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]))
