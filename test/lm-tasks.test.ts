/**
 * Language-model tasks: JSONL of {prompt, completion} tokenized with a real tokenizer.json, or of
 * {input_ids, labels}; scored as the mean NLL over completion tokens and the exact match of the
 * greedy completion; and APL's importance on a decoder, checked against the definition (set the
 * partition back to the base, measure the loss again) and, for the gradient, a finite difference.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { mergedImportance } from '../src/engine/apl/merged-importance';
import { partitionsOf } from '../src/engine/apl/prepare';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { loadModel, Model } from '../src/engine/families/model';
import { useBackend } from '../src/engine/tensors/backend';
import { evaluate } from '../src/engine/train/evaluate';
import { DECODER_CASES, referenceLogits, writeDecoder } from './helpers/decoder-models';
import { removeTempDirs, tempDir } from './helpers/files';
import { writeByteLevelTokenizer, writeSentencePieceTokenizer } from './helpers/tokenizer-files';

const TOKENIZER = join(__dirname, 'fixtures', 'mergekit-tokenizer', 'base', 'tokenizer.json');

beforeAll(async () => {
  await useBackend('wasm');
});
afterAll(removeTempDirs);

function writeJsonl(lines: unknown[]): string {
  const file = join(tempDir(), 'task.jsonl');
  writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

describe('LM task JSONL', () => {
  it('tokenizes prompt and completion with the tokenizer, scoring only the completion, right-padded', () => {
    const tokenizer = new Tokenizer(JSON.parse(readFileSync(TOKENIZER, 'utf8')), {});
    const file = writeJsonl([
      { task: 'echo', tokenizer: TOKENIZER, description: 'repeat the word' },
      { split: 'probe', prompt: 'the cat', completion: ' the cat' },
      { split: 'probe', prompt: 'a', completion: ' dog' },
      { split: 'test', input_ids: [3, 4, 5], labels: [-100, 4, 5] },
    ]);
    const data = loadTaskData(file);
    expect(data.task).toBe('echo');
    expect(data.classes).toBe(Math.max(...tokenizer.get_vocab(true).values()) + 1);
    const probe = getSplit(data, 'probe');
    const prompt = tokenizer.encode('the cat').ids;
    const completion = tokenizer.encode(' the cat', { add_special_tokens: false }).ids;
    expect(completion.length).toBeGreaterThan(0);
    const length = probe.exampleShape[0];
    expect(probe.labelsPerExample).toBe(length);
    expect(Array.from(probe.inputs.subarray(0, prompt.length + completion.length))).toEqual([...prompt, ...completion]);
    expect(Array.from(probe.labels.subarray(0, length))).toEqual([...prompt.map(() => -100), ...completion, ...new Array(length - prompt.length - completion.length).fill(-100)]);
    expect(Array.from(getSplit(data, 'test').labels)).toEqual([-100, 4, 5]);
  });

  it('reads byte-level BPE (Llama 3, Qwen2) and SentencePiece-style BPE (Llama 2, Mistral) tokenizer.json files', () => {
    const dir = tempDir();
    // Byte-level (ids here are the byte values): "é" is two bytes; " the" one merged piece; the BOS starts the prompt only.
    const byteLevel = loadTaskData(writeJsonl([{ tokenizer: writeByteLevelTokenizer(dir) }, { split: 'probe', prompt: 'café', completion: ' the' }]));
    const b = getSplit(byteLevel, 'probe');
    expect(byteLevel.classes).toBe(260);
    expect(Array.from(b.inputs)).toEqual([259, 99, 97, 102, 0xc3, 0xa9, 258]);
    expect(Array.from(b.labels)).toEqual([-100, -100, -100, -100, -100, -100, 258]);
    // SentencePiece style: ▁ prepended, unknown bytes as <0xNN>, <s> first.
    const sentencePiece = loadTaskData(writeJsonl([{ tokenizer: writeSentencePieceTokenizer(dir) }, { split: 'probe', prompt: 'is é', completion: 'the' }]));
    const s = getSplit(sentencePiece, 'probe');
    expect(Array.from(s.inputs)).toEqual([1, 269, 259, 198, 172, 267]);
    expect(Array.from(s.labels)).toEqual([-100, -100, -100, -100, -100, 267]);
  });

  it.each([
    [['{"split": "probe", "input_ids": [1, 2], "labels": [-100, 2]}', '{not json'], /task\.jsonl:2: not valid JSON/],
    [[{ split: 'probe', prompt: 'a', completion: 'b' }], /task\.jsonl:1: has text but the file names no tokenizer/],
    [[{ split: 'probe', input_ids: [1, 2], labels: [-100, 3] }], /task\.jsonl:1: "labels"\[1\] is 3 but "input_ids"\[1\] is 2/],
    [[{ split: 'probe', input_ids: [1, 2], labels: [1, 2] }], /task\.jsonl:1: the first token cannot be scored/],
    [[{ split: 'probe', input_ids: [1, 2], labels: [-100, -100] }], /task\.jsonl:1: no token is scored/],
    [[{ split: 'probe', input_ids: [1, -2], labels: [-100, -2] }], /task\.jsonl:1: "input_ids"\[1\] is -2, not a token id/],
    [[{ task: 'x', tokenizer: 'missing.json' }], /task\.jsonl:1: .*missing\.json: no such tokenizer file/],
    [[{ split: 'probe', input_ids: [1, 2], labels: [-100, 2] }, { task: 'late' }], /task\.jsonl:2: has no "split"; only the first line may be a header/],
  ])('names the line of a bad record (%#)', (lines, message) => {
    expect(() => loadTaskData(writeJsonl(lines))).toThrow(message);
  });
});

/** A base decoder and a fine-tune of it (the base plus a small seeded change to every tensor). */
function decoderPair(name: keyof typeof DECODER_CASES): { base: Model; finetune: Model; config: Record<string, unknown>; values: Map<string, Float32Array> } {
  const { config } = DECODER_CASES[name];
  const baseDir = tempDir();
  const baseValues = writeDecoder(baseDir, config, { seed: 11 });
  const delta = writeDecoder(tempDir(), config, { seed: 12 });
  const values = new Map([...baseValues].map(([n, v]) => [n, v.map((x, i) => x + 0.3 * (delta.get(n)![i] - (n.endsWith('norm.weight') ? 1 : 0)))]));
  const ftDir = tempDir();
  writeDecoder(ftDir, config, { values });
  return { base: loadModel(baseDir), finetune: loadModel(ftDir), config, values };
}

const PROBE_IDS = [
  [7, 30, 55, 12, 80, 3],
  [19, 2, 44, 61, 0, 0],
  [90, 5, 5, 71, 33, 18],
];

describe('an LM task on a decoder', () => {
  it('scores the mean NLL over completion tokens and the exact match of the greedy completion', async () => {
    const { finetune, config, values } = decoderPair('mistral');
    const argmax = (row: number[]) => row.indexOf(Math.max(...row));
    const nextGreedy = (ids: number[]) => argmax(referenceLogits(config, values, [ids])[0][ids.length - 1]);
    // Sequence 0's completion is the greedy decode of its prompt (answered); sequence 1's last token is not.
    const ids0 = PROBE_IDS[0].slice(0, 2);
    ids0.push(nextGreedy(ids0));
    ids0.push(nextGreedy(ids0));
    const ids1 = PROBE_IDS[1].slice(0, 3);
    ids1.push((nextGreedy(ids1) + 1) % 96);
    const rows = [ids0, ids1];
    const file = writeJsonl([{ vocab_size: 96 }, ...rows.map((ids) => ({ split: 'test', input_ids: ids, labels: [-100, -100, ids[2], ids[3]] }))]);
    const greedyRows = referenceLogits(config, values, rows);
    const split = getSplit(loadTaskData(file), 'test');
    expect(split.labelsPerExample).toBe(4);
    const nll = (s: number, t: number, token: number) => {
      const row = greedyRows[s][t];
      const top = Math.max(...row);
      return Math.log(row.reduce((a, v) => a + Math.exp(v - top), 0)) + top - row[token];
    };
    const wantLoss = (nll(0, 1, ids0[2]) + nll(0, 2, ids0[3]) + nll(1, 1, ids1[2]) + nll(1, 2, ids1[3])) / 4;
    const result = await evaluate(finetune, 'copy', split);
    expect(result.scoredLabels).toBe(4);
    expect(result.loss).toBeCloseTo(wantLoss, 4);
    expect(result.accuracy).toBe(0.5);
  });

  describe.each(['mistral', 'qwen2'] as const)('APL importance on %s', (name) => {
    let pair: ReturnType<typeof decoderPair>;
    let probeFile: string;
    beforeAll(() => {
      pair = decoderPair(name);
      probeFile = writeJsonl([{ vocab_size: 96 }, ...PROBE_IDS.map((ids) => ({ split: 'probe', input_ids: ids, labels: [-100, -100, ...ids.slice(2, 4), -100, -100] }))]);
    });

    /** The loss with `tensors` rows `rows` set back to the base, by evaluation of a separately built model. */
    const lossWithReset = async (reset: Array<[string, number[] | 'all']>) => {
      const { base, finetune } = pair;
      const params = new Map([...finetune.params].map(([n, v]) => [n, Float32Array.from(v)]));
      for (const [tensor, rows] of reset) {
        const target = params.get(tensor)!;
        const source = base.params.get(tensor)!;
        const rowLength = target.length / finetune.shapes.get(tensor)![0];
        for (const r of rows === 'all' ? Array.from({ length: finetune.shapes.get(tensor)![0] }, (_, i) => i) : rows) target.set(source.subarray(r * rowLength, (r + 1) * rowLength), r * rowLength);
      }
      return (await evaluate({ ...finetune, params }, 'probe', getSplit(loadTaskData(probeFile), 'probe'))).loss;
    };

    it('exact intervention at layer and row level equals resetting the partition and measuring again', async () => {
      const { base, finetune } = pair;
      const probe = getSplit(loadTaskData(probeFile), 'probe');
      const shapes = new Map(finetune.family.trunkShapes(finetune.config).map((t) => [t.name, t.shape]));
      const clean = await lossWithReset([]);
      for (const level of ['layer', 'row'] as const) {
        const scheme = buildPartitions(level, shapes);
        const exact = await exactImportance({ base, finetune, task: 'probe', probe, scheme }, { maxBatchElements: 2 ** 16 });
        expect(exact.cleanLoss).toBeCloseTo(clean, 5);
        const checked = level === 'layer' ? Array.from({ length: scheme.count }, (_, k) => k) : [0, 7, 95, ...[5, 40, 61, 200, 333, scheme.count - 1, scheme.count - 50].map((k) => Math.min(k, scheme.count - 1))];
        for (const k of new Set(checked)) {
          const reset: Array<[string, number[] | 'all']> = [];
          for (const [tensor, rows] of scheme.rows) {
            const mine = Array.from(rows.keys()).filter((r) => rows[r] === k);
            if (mine.length > 0) reset.push([tensor, mine]);
          }
          const want = (await lossWithReset(reset)) - clean;
          expect({ k, name: scheme.names[k], got: exact.lossIncrease[k] }).toEqual({ k, name: scheme.names[k], got: expect.closeTo(want, 4) });
        }
        if (level === 'row' && name === 'mistral') {
          // Embedding rows of tokens the probe set never reads cost nothing (an untied table).
          expect(exact.unreadPartitions).toBe(96 - new Set(PROBE_IDS.flat()).size);
        }
        if (name === 'qwen2') expect(exact.unreadPartitions).toBe(0);
      }
    });

    it('unit partitions: a feed-forward unit is its gate and up rows and its down_proj column, and exact intervention resets exactly those', async () => {
      const { base, finetune } = pair;
      const probe = getSplit(loadTaskData(probeFile), 'probe');
      const scheme = partitionsOf('unit', finetune);
      const intermediate = finetune.shapes.get('model.layers.0.mlp.gate_proj.weight')![0];
      const first = scheme.rows.get('model.layers.0.mlp.gate_proj.weight')![0];
      expect(Array.from(scheme.rows.get('model.layers.0.mlp.up_proj.weight')!)).toEqual(Array.from({ length: intermediate }, (_, r) => first + r));
      expect(Array.from(scheme.columns.get('model.layers.0.mlp.down_proj.weight')!)).toEqual(Array.from({ length: intermediate }, (_, r) => first + r));
      expect(scheme.rows.get('model.layers.0.mlp.down_proj.weight')!.every((k) => k === -1)).toBe(true);
      const hidden = finetune.shapes.get('model.layers.0.mlp.down_proj.weight')![0];
      expect(scheme.sizes[first + 3]).toBe(2 * finetune.shapes.get('model.layers.0.mlp.gate_proj.weight')![1] + hidden);
      const exact = await exactImportance({ base, finetune, task: 'probe', probe, scheme }, { maxBatchElements: 2 ** 16 });
      const clean = await lossWithReset([]);
      for (const [layer, unit] of [[0, 0], [0, 5], [1, intermediate - 1]]) {
        const L = `model.layers.${layer}.mlp.`;
        const k = scheme.rows.get(`${L}gate_proj.weight`)![unit];
        // The unit set back by hand: its two rows, then its column of down_proj.
        const params = new Map([...finetune.params].map(([n, v]) => [n, Float32Array.from(v)]));
        for (const part of ['gate', 'up']) {
          const width = finetune.shapes.get(`${L}${part}_proj.weight`)![1];
          params.get(`${L}${part}_proj.weight`)!.set(base.params.get(`${L}${part}_proj.weight`)!.subarray(unit * width, (unit + 1) * width), unit * width);
        }
        const down = params.get(`${L}down_proj.weight`)!;
        for (let r = 0; r < hidden; r++) down[r * intermediate + unit] = base.params.get(`${L}down_proj.weight`)![r * intermediate + unit];
        const want = (await evaluate({ ...finetune, params }, 'probe', probe)).loss - clean;
        expect({ k, got: exact.lossIncrease[k] }).toEqual({ k, got: expect.closeTo(want, 4) });
      }
    });

    it('located on the merged model of one fine-tune at λ = 1 (the fine-tune itself), importance is the fine-tune’s own', async () => {
      const { base, finetune } = pair;
      const probe = getSplit(loadTaskData(probeFile), 'probe');
      const scheme = buildPartitions('row', new Map(finetune.family.trunkShapes(finetune.config).map((t) => [t.name, t.shape])));
      const contribution = (_: number, tensor: string) => finetune.params.get(tensor)!.map((v, i) => v - base.params.get(tensor)![i]);
      const members = [{ model: finetune, task: 'probe', probe }];
      const own = await exactImportance({ base, finetune, task: 'probe', probe, scheme }, { maxBatchElements: 2 ** 16 });
      const located = await mergedImportance(base, members, { scheme, contribution, estimator: 'exact', metric: 'loss', gradientForm: 'signed' });
      const largest = Math.max(...Array.from(own.lossIncrease, Math.abs));
      own.lossIncrease.forEach((v, k) => expect(Math.abs(located.scores[0][k] - v)).toBeLessThan(1e-4 * largest));
      const gradient = await gradientImportance({ base, finetune, task: 'probe', probe, scheme });
      const locatedGradient = await mergedImportance(base, members, { scheme, contribution, estimator: 'gradient', metric: 'loss', gradientForm: 'signed' });
      gradient.signed.forEach((v, k) => expect(locatedGradient.scores[0][k]).toBeCloseTo(v, 6));
    });

    it('the gradient estimate at model level is the first-order change of the loss along the task vector', async () => {
      const { base, finetune } = pair;
      const probe = getSplit(loadTaskData(probeFile), 'probe');
      const scheme = buildPartitions('model', new Map(finetune.family.trunkShapes(finetune.config).map((t) => [t.name, t.shape])));
      const gradient = await gradientImportance({ base, finetune, task: 'probe', probe, scheme });
      // L(θ_t − εδ) − L(θ_t) ≈ −ε g·δ: the signed estimate times ε.
      const epsilon = 1e-3;
      const params = new Map([...finetune.params].map(([n, v]) => [n, v.map((x, i) => x - epsilon * (x - base.params.get(n)![i]))]));
      const moved = (await evaluate({ ...finetune, params }, 'probe', probe)).loss;
      const clean = (await evaluate(finetune, 'probe', probe)).loss;
      expect(Math.abs(gradient.signed[0])).toBeGreaterThan(1e-3);
      expect((moved - clean) / epsilon).toBeCloseTo(gradient.signed[0], 1);
    });
  });
});
