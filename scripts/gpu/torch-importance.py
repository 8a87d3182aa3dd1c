#!/usr/bin/env python3
"""The same APL row-level importance as apl-merge (exact intervention with one recomputed unit per
row, entering the next linear map as a rank-one term, and the gradient approximation −g·δ), in PyTorch on a CUDA device, for an MLP zoo built
by `apl-merge zoo build --suite vision`: timings to set beside bench/gpu-check.ts, and scores to
compare with apl-merge's.

    python3 scripts/gpu/torch-importance.py ZOO_DIR OUT.json
"""
import json
import os
import sys
import time

import torch

try:
    from safetensors.torch import load_file
except ImportError:  # e.g. Debian's python3-torch without the safetensors package
    import struct

    import numpy

    DTYPES = {'F32': numpy.float32, 'F16': numpy.float16, 'U8': numpy.uint8, 'I32': numpy.int32, 'I64': numpy.int64}

    def load_file(path):
        with open(path, 'rb') as f:
            data = f.read()
        length = struct.unpack('<Q', data[:8])[0]
        header = json.loads(data[8:8 + length])
        header.pop('__metadata__', None)
        return {name: torch.from_numpy(numpy.frombuffer(data, DTYPES[t['dtype']], int(numpy.prod(t['shape'])), 8 + length + t['data_offsets'][0]).reshape(t['shape']).copy())
                for name, t in header.items()}


def load(zoo, rel, device):
    return {k: v.to(device) for k, v in load_file(os.path.join(zoo, rel, 'model.safetensors')).items()}


def main(zoo, out):
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.backends.cuda.matmul.allow_tf32 = False
    manifest = json.load(open(os.path.join(zoo, 'zoo.json')))
    base = load(zoo, manifest['base'], device)
    layers = sorted({k.split('.')[2] for k in base if k.startswith('trunk.layers.')}, key=int)
    results, exact_time, grad_time, partitions, passes = {}, 0.0, 0.0, 0, 0
    for entry in manifest['finetunes']:
        task = entry['task']
        ft = load(zoo, entry['model'], device)
        data = load_file(os.path.join(zoo, entry['data']))
        x = data['probe.inputs'].to(device).float().reshape(data['probe.inputs'].shape[0], -1) / 255
        y = data['probe.labels'].to(device).long()
        hw, hb = ft[f'heads.{task}.weight'], ft[f'heads.{task}.bias']

        def run_from(a, start, params):
            for i in layers[start:]:
                a = torch.relu(a @ params[f'trunk.layers.{i}.weight'].T + params[f'trunk.layers.{i}.bias'])
            return a @ hw.T + hb

        for repeat in range(4):  # first round warms up
            torch.cuda.synchronize() if device == 'cuda' else None
            t0 = time.perf_counter()
            with torch.no_grad():
                acts = [x]
                for i in layers:
                    acts.append(torch.relu(acts[-1] @ ft[f'trunk.layers.{i}.weight'].T + ft[f'trunk.layers.{i}.bias']))
                clean = torch.nn.functional.cross_entropy(acts[-1] @ hw.T + hb, y)
                loss_increase = []
                for s, i in enumerate(layers):
                    w, b = f'trunk.layers.{i}.weight', f'trunk.layers.{i}.bias'
                    # Setting row r back to the base changes only unit r of this layer's output...
                    change = (torch.relu(acts[s] @ base[w].T + base[b]) - acts[s + 1]).T   # [units, N]
                    units = change.shape[0]
                    # ...which enters the next linear map (layer or head) as a rank-one term.
                    if s + 1 < len(layers):
                        nw, nb = ft[f'trunk.layers.{layers[s + 1]}.weight'], ft[f'trunk.layers.{layers[s + 1]}.bias']
                    else:
                        nw, nb = hw, hb
                    pre = (acts[s + 1] @ nw.T + nb).unsqueeze(0) + change.unsqueeze(2) * nw.T.unsqueeze(1)   # [units, N, out]
                    flat = pre.reshape(units * x.shape[0], -1)
                    logits = flat if s + 1 == len(layers) else run_from(torch.relu(flat), s + 2, ft)
                    per = torch.nn.functional.cross_entropy(logits, y.repeat(units), reduction='none').reshape(units, -1).mean(1)
                    loss_increase.append(per - clean)
                loss_increase = torch.cat(loss_increase)
            torch.cuda.synchronize() if device == 'cuda' else None
            t1 = time.perf_counter()
            params = {k: v.clone().requires_grad_(k.startswith('trunk.')) for k, v in ft.items()}
            loss = torch.nn.functional.cross_entropy(run_from(x, 0, params), y)
            loss.backward()
            signed = torch.cat([-(params[f'trunk.layers.{i}.weight'].grad * (ft[f'trunk.layers.{i}.weight'] - base[f'trunk.layers.{i}.weight'])).sum(1)
                                - params[f'trunk.layers.{i}.bias'].grad * (ft[f'trunk.layers.{i}.bias'] - base[f'trunk.layers.{i}.bias']) for i in layers])
            torch.cuda.synchronize() if device == 'cuda' else None
            t2 = time.perf_counter()
            if repeat > 0:
                exact_time += t1 - t0
                grad_time += t2 - t1
                partitions += loss_increase.numel()
                passes += 1
        results[task] = {'loss': loss_increase.tolist(), 'gradient': signed.tolist()}
    summary = {'device': torch.cuda.get_device_name() if device == 'cuda' else 'cpu', 'torch': torch.__version__,
               'exactPartitionsPerSecond': partitions / exact_time, 'gradientPassesPerSecond': passes / grad_time}
    json.dump({'summary': summary, 'scores': results}, open(out, 'w'))
    print(json.dumps(summary))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
