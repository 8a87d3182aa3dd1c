/** Text: the tokenizer, the text tasks, the encoder's differentiable lookups, APL on an encoder, the text zoo. */
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { sha256File } from '../src/engine/checkpoint/files';
import { getSplit, loadTaskData, TaskSplit } from '../src/engine/data/task-data';
import { TEXT_TASKS, textSplits } from '../src/engine/data/text';
import { CLS_ID, PAD_ID, pieces, SEP_ID, SPECIAL_TOKENS, Tokenizer, UNK_ID, words } from '../src/engine/data/tokenizer';
import { EncoderConfig, encoderFamily } from '../src/engine/families/encoder';
import { gatherRows } from '../src/engine/families/gather-rows';
import { loadModel, Model, toTensors } from '../src/engine/families/model';
import { FamilyConfig, logits, ModelFamily, range } from '../src/engine/families/types';
import { Random } from '../src/engine/kernels/random';
import { useBackend } from '../src/engine/tensors/backend';
import { buildTextZoo, TEXT_SCALES } from '../src/engine/zoo/text';
import { removeTempDirs, tempDir } from './helpers/files';

beforeAll(async () => {
  await useBackend('wasm');
});
afterAll(removeTempDirs);

describe('tokenizer', () => {
  it('splits lower-cased words and punctuation into the longest vocabulary pieces', async () => {
    expect(words('Hello, World! 42x')).toEqual(['hello', ',', 'world', '!', '42x']);
    expect(pieces('hello')).toEqual(['▁hello']);
    expect(pieces('strawberries')).toEqual(['▁straw', 'berries']);
  });
  it('encodes [CLS] … [SEP] with padding, unknown pieces as [UNK]', async () => {
    const tokenizer = new Tokenizer([...SPECIAL_TOKENS, '▁the', '▁cat', '▁sat']);
    expect(Array.from(tokenizer.encode('The cat sat on the mat', 10))).toEqual([CLS_ID, 5, 6, 7, UNK_ID, 5, UNK_ID, SEP_ID, PAD_ID, PAD_ID]);
    expect(Array.from(tokenizer.encode('the the the the the', 4))).toEqual([CLS_ID, 5, 5, SEP_ID]);
    expect(() => new Tokenizer(['▁the'])).toThrow(/vocabulary must start with \[PAD\]/);
  });
  it('builds a vocabulary of the most used pieces after the special tokens', async () => {
    const tokenizer = Tokenizer.fromCorpus(['the cat', 'the dog', 'the cat'], 7);
    expect(tokenizer.vocabulary).toEqual([...SPECIAL_TOKENS, '▁the', '▁cat']);
  });
});

describe('text tasks', () => {
  it.each(Object.keys(TEXT_TASKS))('%s has in-domain and shifted examples of every class, and disjoint seeded splits', async (name) => {
    const source = TEXT_TASKS[name]();
    for (let c = 0; c < source.classes; c++) {
      expect(source.inDomain.some((e) => e.label === c)).toBe(true);
      expect(source.shifted.some((e) => e.label === c)).toBe(true);
    }
    const sizes = { train: 200, probe: 16, validation: 50, test: 50, ood: 50 };
    const a = textSplits(source, sizes, 3);
    const b = textSplits(source, sizes, 3);
    expect(a.probe).toEqual(b.probe);
    const seen = new Set([...a.train, ...a.probe, ...a.validation, ...a.test]);
    expect(seen.size).toBe(200 + 16 + 50 + 50);
    expect(() => textSplits(source, { ...sizes, ood: 1e7 }, 3)).toThrow(/shifted examples, but the splits need/);
  });
});

describe('gatherRows', () => {
  it('has the scatter-add gradient of a row gather', async () => {
    const table = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const ids = tf.tensor1d([2, 0, 2], 'int32');
    const weights = tf.tensor2d([[1, 10], [100, 1000], [2, 20]]);
    const gradient = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(gatherRows(t, ids), weights)))(table);
    expect(gradient.arraySync()).toEqual([[100, 1000], [0, 0], [3, 30]]);
    expect(gatherRows(table, ids).arraySync()).toEqual([[5, 6], [1, 2], [5, 6]]);
  });
});

function tinyEncoder(seed: number, flavor: EncoderConfig['flavor'] = 'apl'): { base: Model; finetune: Model; probe: TaskSplit } {
  const config: EncoderConfig = {
    family: 'encoder', flavor, vocabSize: 20, hiddenSize: 8, layers: 2, heads: 2, intermediateSize: 16, maxPositions: flavor === 'roberta' ? 10 : 6,
    typeVocabSize: 2, layerNormEps: 1e-5, padTokenId: flavor === 'roberta' ? 1 : 0, sequenceLength: 6, tasks: { t: 3 },
  };
  const shapes = new Map([...encoderFamily.trunkShapes(config), ...encoderFamily.headShapes(config, 't')].map((s) => [s.name, s.shape]));
  const baseParams = encoderFamily.initTrunk(config, seed);
  for (const [n, v] of encoderFamily.initHead(config, 't', seed)) baseParams.set(n, v);
  const random = new Random(seed, 'finetune');
  const ftParams = new Map([...baseParams].map(([n, v]) => [n, v.map((x) => x + (random.nextFloat() - 0.5) * 0.3)]));
  const family = encoderFamily as unknown as ModelFamily<FamilyConfig>;
  const ids = new Int32Array(12 * 6);
  for (let i = 0; i < 12; i++) for (let j = 0; j < 6; j++) ids[i * 6 + j] = j < 6 - (i % 3) ? 5 + (random.nextUint32() % 15) : config.padTokenId;
  return {
    base: { path: 'base', family, config, params: baseParams, shapes },
    finetune: { path: 'finetune', family, config, params: ftParams, shapes },
    probe: { inputs: ids, exampleShape: [6], labels: Int32Array.from({ length: 12 }, (_, i) => i % 3), count: 12 },
  };
}

describe('APL on the encoder', () => {
  it('exact intervention (batched over blocks, padding masks tiled) equals corrupting each partition by hand', async () => {
    const { base, finetune, probe } = tinyEncoder(1);
    const scheme = buildPartitions('layer', trunkShapesOf(finetune));
    const result = await exactImportance({ base, finetune, task: 't', probe, scheme });
    const loss = (model: Model) => {
      const { tensors, lookup } = toTensors(model);
      const value = tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(probe.labels, 'int32'), 3), logits(model.family, model.config, lookup, model.family.inputs(model.config, probe, range(0, 12), 'probe'), 't')).dataSync()[0]);
      tensors.forEach((t) => t.dispose());
      return value;
    };
    const clean = loss(finetune);
    for (let k = 0; k < scheme.count; k++) {
      const params = new Map(finetune.params);
      for (const name of scheme.groups[scheme.groupOf[k]]) params.set(name, base.params.get(name)!);
      expect(result.lossIncrease[k]).toBeCloseTo(loss({ ...finetune, params }) - clean, 4);
    }
    const gradient = await gradientImportance({ base, finetune, task: 't', probe, scheme });
    expect(gradient.signed.every(Number.isFinite)).toBe(true);
    // No tensors left behind by either estimator (workers run many analyses).
    const before = tf.memory().numTensors;
    await exactImportance({ base, finetune, task: 't', probe, scheme });
    await gradientImportance({ base, finetune, task: 't', probe, scheme });
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(['bert', 'roberta'] as const)('skips only rows the probe set never reads, for %s position numbering too', async (flavor) => {
    const { base, finetune, probe } = tinyEncoder(4, flavor);
    const scheme = buildPartitions('row', trunkShapesOf(finetune));
    const skipping = await exactImportance({ base, finetune, task: 't', probe, scheme });
    const everything = await exactImportance({ base, finetune: { ...finetune, family: { ...finetune.family, rowsRead: undefined } }, task: 't', probe, scheme });
    expect(skipping.unreadPartitions).toBeGreaterThan(0);
    for (let k = 0; k < scheme.count; k++) {
      expect(skipping.lossIncrease[k]).toBeCloseTo(everything.lossIncrease[k], 6);
      expect(skipping.kl[k]).toBeCloseTo(everything.kl[k], 6);
    }
  });

  it('scores embedding rows the probe set never reads as zero without running them, the rest as before', async () => {
    const { base, finetune, probe } = tinyEncoder(3);
    const scheme = buildPartitions('row', trunkShapesOf(finetune));
    const skipping = await exactImportance({ base, finetune, task: 't', probe, scheme });
    const everything = await exactImportance({ base, finetune: { ...finetune, family: { ...finetune.family, rowsRead: undefined } }, task: 't', probe, scheme });
    // Token ids 1–4 never occur (the probe uses 0 for padding and 5–19); token type 1 is never used.
    const unread = ['word_embeddings.weight[1]', 'word_embeddings.weight[2]', 'word_embeddings.weight[3]', 'word_embeddings.weight[4]', 'token_type_embeddings.weight[1]'];
    expect(skipping.unreadPartitions).toBe(unread.length);
    expect(everything.unreadPartitions).toBe(0);
    for (let k = 0; k < scheme.count; k++) {
      const isUnread = unread.some((u) => scheme.names[k].endsWith(u));
      if (isUnread) expect([skipping.lossIncrease[k], skipping.kl[k]]).toEqual([0, 0]);
      expect(skipping.lossIncrease[k]).toBeCloseTo(everything.lossIncrease[k], 6);
      expect(skipping.kl[k]).toBeCloseTo(everything.kl[k], 6);
    }
    // …and what was skipped really has no effect: the full run finds (float-)zero there too.
    for (let k = 0; k < scheme.count; k++) if (unread.some((u) => scheme.names[k].endsWith(u))) expect(Math.abs(everything.lossIncrease[k])).toBeLessThan(1e-6);
  });

  it('rejects token ids outside the vocabulary and image data', async () => {
    const { finetune, probe } = tinyEncoder(2);
    const bad = { ...probe, inputs: probe.inputs.map((v, i) => (i === 7 ? 99 : v)) };
    expect(() => finetune.family.inputs(finetune.config, bad, range(0, 12), 'probe')).toThrow(/example 1 has token id 99 outside the vocabulary of 20/);
    const images = { ...probe, inputs: new Uint8Array(12 * 16), exampleShape: [4, 4] };
    expect(() => finetune.family.inputs(finetune.config, images, range(0, 12), 'probe')).toThrow(/examples of shape \[4,4\] \(U8\) are not token id sequences/);
  });
});

describe('text zoo', () => {
  it('pretrains, fine-tunes and writes token-id task data, deterministically', async () => {
    const scale = { ...TEXT_SCALES.quick, tasks: ['spam', 'brown_tense'], vocabularySize: 300, sequenceLength: 12, hiddenSize: 8, heads: 2, intermediateSize: 16, pretrainSentences: 300, pretrainSteps: 5, finetuneSteps: 5, batchSize: 8, sizes: { train: 100, probe: 8, validation: 20, test: 20, ood: 20 } };
    const first = tempDir();
    const second = tempDir();
    const manifest = await buildTextZoo({ out: first, quick: true, seed: 5, scale });
    await buildTextZoo({ out: second, quick: true, seed: 5, scale });
    expect(manifest.suite).toBe('text');
    expect(manifest.finetunes.map((f) => f.task)).toEqual(['spam', 'brown_tense']);
    for (const path of ['base/model.safetensors', 'finetunes/spam/model.safetensors', 'tasks/brown_tense.safetensors', 'vocab.json']) {
      expect(sha256File(join(second, path))).toBe(sha256File(join(first, path)));
    }
    const probe = getSplit(loadTaskData(join(first, 'tasks', 'spam.safetensors')), 'probe');
    expect(probe.exampleShape).toEqual([12]);
    expect(probe.inputs).toBeInstanceOf(Int32Array);
    const model = loadModel(join(first, 'finetunes', 'spam'));
    expect(model.config.tasks).toEqual({ spam: 2 });
  });
});
