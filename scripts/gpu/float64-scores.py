"""Exact intervention's loss increases for an MLP zoo's row partitions, computed in float64 with
NumPy (the float32 weights and inputs taken as exact), and how far each engine's scores in a
bench/gpu-check.ts result are from them: max |score − float64| / max |float64| per task.

    python3 scripts/gpu/float64-scores.py ZOO SCORING_JSON
Needs only NumPy (reads safetensors itself)."""
import json
import struct
import sys

import numpy as np

DTYPES = {'F32': np.float32, 'I32': np.int32, 'U8': np.uint8}


def load(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: np.frombuffer(data[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=DTYPES[v['dtype']]).reshape(v['shape'])
            for k, v in header.items() if k != '__metadata__'}


def cross_entropy(z, y):
    top = z.max(1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(z - top).sum(1))) - z[np.arange(len(y)), y]


def loss_increases(zoo, base_path, entry):
    task = entry['task']
    base = {k: v.astype(np.float64) for k, v in load(f"{zoo}/{base_path}/model.safetensors").items()}
    ft = {k: v.astype(np.float64) for k, v in load(f"{zoo}/{entry['model']}/model.safetensors").items()}
    data = load(f"{zoo}/{entry['data']}")
    x = data['probe.inputs'].reshape(data['probe.inputs'].shape[0], -1).astype(np.float64) / 255
    y = data['probe.labels'].astype(np.int64)
    layers = sorted({int(k.split('.')[2]) for k in ft if k.startswith('trunk.layers.')})
    maps = [(ft[f'trunk.layers.{i}.weight'], ft[f'trunk.layers.{i}.bias'], True) for i in layers]
    maps.append((ft[f'heads.{task}.weight'], ft[f'heads.{task}.bias'], False))
    acts, pres = [x], []
    for w, b, relu in maps:
        pres.append(acts[-1] @ w.T + b)
        acts.append(np.maximum(pres[-1], 0) if relu else pres[-1])
    clean = cross_entropy(acts[-1], y).mean()
    scores = []
    for s, i in enumerate(layers):
        changed = np.maximum(acts[s] @ base[f'trunk.layers.{i}.weight'].T + base[f'trunk.layers.{i}.bias'], 0)
        change = changed - acts[s + 1]
        next_w = maps[s + 1][0]
        for r in range(change.shape[1]):
            # Unit r back to the base: its change enters the next map as a rank-one term.
            a = pres[s + 1] + np.outer(change[:, r], next_w[:, r])
            for k in range(s + 1, len(maps)):
                if k > s + 1:
                    a = a @ maps[k][0].T + maps[k][1]
                if maps[k][2]:
                    a = np.maximum(a, 0)
            scores.append(cross_entropy(a, y).mean() - clean)
    return np.array(scores)


def main(zoo, scoring):
    manifest = json.load(open(f'{zoo}/zoo.json'))
    result = json.load(open(scoring))
    for entry in manifest['finetunes']:
        truth = loss_increases(zoo, manifest['base'], entry)
        scale = np.abs(truth).max()
        for engine, scores in result['scores'].items():
            if scores and entry['task'] in scores:
                s = np.array(scores[entry['task']]['loss'])
                print(f"{entry['task']}: {engine} within {np.abs(s - truth).max() / scale:.2e} of float64 (largest increase {scale:.2e})")


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
