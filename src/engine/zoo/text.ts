/**
 * The text zoo: a small pre-LN transformer encoder pretrained with a masked-token objective on
 * unlabelled sentences (nlp-corpus), then fine-tuned on each text task with a fresh head.
 * The vocabulary is the most used pieces of the pretraining and training texts (vocab.json).
 * Layout and manifest as the vision zoo: base/, finetunes/<task>/, tasks/<task>.safetensors, zoo.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { saveTaskData, TaskSplit } from '../data/task-data';
import { pretrainingSentences, TEXT_TASKS, TextExample, textSplits, TextSplitSizes } from '../data/text';
import { MASK_ID, PAD_ID, SPECIAL_TOKENS, Tokenizer } from '../data/tokenizer';
import { throwIfAborted } from '../errors';
import { dense, EncoderConfig, encoderFamily, layerNorm } from '../families/encoder';
import { gatherRows } from '../families/gather-rows';
import { Model, modelOf, saveModel } from '../families/model';
import { ModelFamily } from '../families/types';
import { Random } from '../kernels/random';
import { ProgressCallback, ProgressTracker } from '../progress';
import { useBackend } from '../tensors/backend';
import { train } from '../train/train';
import { BuildZooOptions, ownAccuracy, ZooEntry, ZooManifest } from './vision';

export interface TextZooScale {
  tasks: string[];
  vocabularySize: number;
  sequenceLength: number;
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
  pretrainSentences: number;
  pretrainSteps: number;
  finetuneSteps: number;
  batchSize: number;
  learningRate: number;
  sizes: TextSplitSizes;
}

export const TEXT_SCALES: Record<'quick' | 'full', TextZooScale> = {
  quick: {
    tasks: ['brown_genre', 'brown_tense', 'spam'],
    vocabularySize: 1000,
    sequenceLength: 24,
    hiddenSize: 32,
    layers: 2,
    heads: 2,
    intermediateSize: 64,
    pretrainSentences: 4000,
    pretrainSteps: 120,
    finetuneSteps: 100,
    batchSize: 32,
    learningRate: 2e-3,
    sizes: { train: 1500, probe: 32, validation: 300, test: 500, ood: 500 },
  },
  full: {
    tasks: ['brown_genre', 'brown_tense', 'spam'],
    vocabularySize: 6000,
    sequenceLength: 48,
    hiddenSize: 64,
    layers: 2,
    heads: 4,
    intermediateSize: 128,
    pretrainSentences: 30000,
    pretrainSteps: 1200,
    finetuneSteps: 500,
    batchSize: 32,
    learningRate: 1e-3,
    sizes: { train: 2000, probe: 64, validation: 300, test: 600, ood: 1000 },
  },
};

function encodeAll(tokenizer: Tokenizer, examples: TextExample[], length: number): TaskSplit {
  const inputs = new Int32Array(examples.length * length);
  examples.forEach((e, i) => inputs.set(tokenizer.encode(e.text, length), i * length));
  return { inputs, exampleShape: [length], labels: Int32Array.from(examples, (e) => e.label), count: examples.length };
}

/** Masked-token pretraining of the trunk and the `pretrain_mlm` head (a token-level head over the vocabulary). */
async function pretrainMaskedTokens(model: Model, sentences: Int32Array, count: number, scale: TextZooScale, seed: number, onProgress?: ProgressCallback, signal?: AbortSignal): Promise<number> {
  const config = model.config as EncoderConfig;
  const family = model.family as unknown as ModelFamily<EncoderConfig>;
  const L = scale.sequenceLength;
  const variables = new Map<string, tf.Variable>();
  for (const [name, values] of model.params) variables.set(name, tf.variable(tf.tensor(values, model.shapes.get(name)!), true));
  const lookup = (name: string) => variables.get(name)!;
  const optimizer = tf.train.adam(scale.learningRate);
  const random = new Random(seed, 'masked-tokens');
  const progress = new ProgressTracker('pretrain', scale.pretrainSteps, onProgress);
  const stages = family.stages(config).slice(0, -1); // everything but pooling: per-token states
  let lastLoss = NaN;
  try {
    for (let step = 0; step < scale.pretrainSteps; step++) {
      throwIfAborted(signal);
      const ids = new Int32Array(scale.batchSize * L);
      const targets = new Int32Array(scale.batchSize * L);
      const maskedPositions: number[] = [];
      for (let b = 0; b < scale.batchSize; b++) {
        const row = random.nextUint32() % count;
        for (let j = 0; j < L; j++) {
          const token = sentences[row * L + j];
          targets[b * L + j] = token;
          ids[b * L + j] = token;
          // Mask 15% of the ordinary tokens.
          if (token >= SPECIAL_TOKENS.length && random.nextFloat() < 0.15) {
            ids[b * L + j] = MASK_ID;
            maskedPositions.push(b * L + j);
          }
        }
      }
      if (maskedPositions.length === 0) maskedPositions.push(1);
      const masked = Int32Array.from(maskedPositions);
      const loss = optimizer.minimize(() => {
        const input = tf.tensor2d(ids, [scale.batchSize, L], 'int32');
        const context = family.context!(config, input);
        let h: tf.Tensor = input;
        for (const stage of stages) h = stage.apply(lookup, h, context);
        h = layerNorm(h, lookup('final_layer_norm.weight'), lookup('final_layer_norm.bias'), config.layerNormEps);
        // Project only the masked positions onto the vocabulary.
        const states = gatherRows(tf.reshape(h, [scale.batchSize * L, config.hiddenSize]), tf.tensor1d(masked, 'int32'));
        const out = dense(states, lookup('heads.pretrain_mlm.weight'), lookup('heads.pretrain_mlm.bias'));
        const labels = tf.oneHot(tf.tensor1d(Int32Array.from(masked, (i) => targets[i]), 'int32'), config.vocabSize);
        return tf.losses.softmaxCrossEntropy(labels, out) as tf.Scalar;
      }, true);
      if (step % 25 === 0 || step === scale.pretrainSteps - 1) {
        lastLoss = (await (loss as tf.Scalar).data())[0];
        progress.report(step + 1, `masked-token loss ${lastLoss.toFixed(3)}`);
      }
      loss?.dispose();
    }
    for (const [name, variable] of variables) model.params.set(name, Float32Array.from(await variable.data()));
  } finally {
    optimizer.dispose();
    variables.forEach((v) => v.dispose());
  }
  return lastLoss;
}

export async function buildTextZoo(options: BuildZooOptions<TextZooScale>): Promise<ZooManifest> {
  const started = Date.now();
  const backend = await useBackend();
  const scale = options.scale ?? TEXT_SCALES[options.quick ? 'quick' : 'full'];
  const log = options.log ?? (() => undefined);
  const L = scale.sequenceLength;
  const sources = scale.tasks.map((name) => {
    const make = TEXT_TASKS[name];
    if (!make) throw new Error(`unknown text task "${name}" (known: ${Object.keys(TEXT_TASKS).join(', ')})`);
    return make();
  });
  const splits = sources.map((source) => textSplits(source, scale.sizes, options.seed));
  const sentences = pretrainingSentences(scale.pretrainSentences, options.seed);
  const tokenizer = Tokenizer.fromCorpus([...sentences, ...splits.flatMap((s) => s.train.map((e) => e.text))], scale.vocabularySize);
  mkdirSync(join(options.out, 'tasks'), { recursive: true });
  writeFileSync(join(options.out, 'vocab.json'), JSON.stringify(tokenizer.vocabulary) + '\n');

  const encoded = new Map<string, Record<string, TaskSplit>>();
  sources.forEach((source, i) => {
    const bySplit: Record<string, TaskSplit> = {};
    for (const [split, examples] of Object.entries(splits[i])) bySplit[split] = encodeAll(tokenizer, examples, L);
    encoded.set(source.name, bySplit);
    const { train: _train, ...evaluation } = bySplit;
    void _train;
    saveTaskData(join(options.out, 'tasks', `${source.name}.safetensors`), { name: source.name, classes: source.classes, description: source.description, seed: options.seed }, evaluation);
  });

  const family = encoderFamily;
  const baseConfig: EncoderConfig = {
    family: 'encoder',
    flavor: 'apl',
    vocabSize: tokenizer.size,
    hiddenSize: scale.hiddenSize,
    layers: scale.layers,
    heads: scale.heads,
    intermediateSize: scale.intermediateSize,
    maxPositions: L,
    typeVocabSize: 2,
    layerNormEps: 1e-5,
    padTokenId: PAD_ID,
    sequenceLength: L,
    tasks: { pretrain_mlm: tokenizer.size },
  };
  const baseParams = family.initTrunk(baseConfig, options.seed);
  for (const [n, v] of family.initHead(baseConfig, 'pretrain_mlm', options.seed)) baseParams.set(n, v);
  const base = modelOf(family, baseConfig, baseParams);
  const pretraining = encodeAll(tokenizer, sentences.map((text) => ({ text, label: 0 })), L);
  log(`pretraining the encoder with masked tokens on ${sentences.length} sentences (${scale.pretrainSteps} steps)`);
  const mlmLoss = await pretrainMaskedTokens(base, pretraining.inputs as Int32Array, pretraining.count, scale, options.seed, options.onProgress, options.signal);
  log(`  masked-token loss ${mlmLoss.toFixed(3)}`);
  saveModel(join(options.out, 'base'), base, { zoo_seed: String(options.seed) });

  const finetunes: ZooEntry[] = [];
  for (const [t, source] of sources.entries()) {
    throwIfAborted(options.signal);
    const config: EncoderConfig = { ...baseConfig, tasks: { [source.name]: source.classes } };
    const params = new Map<string, Float32Array>();
    for (const { name } of family.trunkShapes(config)) params.set(name, base.params.get(name)!.slice());
    for (const [n, v] of family.initHead(config, source.name, options.seed)) params.set(n, v);
    const model = modelOf(family, config, params);
    log(`fine-tuning on ${source.name} (${scale.finetuneSteps} steps)`);
    const taskSplits = encoded.get(source.name)!;
    await train(model, [{ task: source.name, split: taskSplits.train }], {
      steps: scale.finetuneSteps,
      batchSize: scale.batchSize,
      learningRate: scale.learningRate,
      seed: options.seed + 1 + t,
      trainable: [...params.keys()],
      onProgress: options.onProgress,
      signal: options.signal,
    });
    const modelDir = join('finetunes', source.name);
    saveModel(join(options.out, modelDir), model, { zoo_seed: String(options.seed), task: source.name });
    const accuracy = await ownAccuracy(model, source.name, taskSplits);
    log(`  ${source.name}: test ${(accuracy.test * 100).toFixed(1)}%, ood ${(accuracy.ood * 100).toFixed(1)}%`);
    finetunes.push({ task: source.name, classes: source.classes, description: source.description, model: modelDir, data: join('tasks', `${source.name}.safetensors`), accuracy });
  }
  const manifest: ZooManifest = { suite: 'text', seed: options.seed, quick: options.quick, family: family.name, backend, base: 'base', finetunes, scale: { ...scale }, seconds: (Date.now() - started) / 1000 };
  writeFileSync(join(options.out, 'zoo.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
