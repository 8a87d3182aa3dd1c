/**
 * The LM zoo: a small decoder of the Llama architecture (a Hugging Face LlamaForCausalLM checkpoint
 * with its tokenizer.json), pretrained with next-token loss on unlabelled sentences (nlp-corpus),
 * then fine-tuned on four prompted tasks, each scored by the NLL of its completion and the exact
 * match of the greedy completion:
 *  - arithmetic: "what is three plus four ?" → "seven"; OOD: the same sums asked as "three and four make";
 *  - copy: "copy : w1 w2 w3 ." → "w1 w2 w3"; OOD: lists of words the training lists never hold;
 *  - reverse: "reverse : w1 w2 w3 ." → "w3 w2 w1"; OOD: the same shift;
 *  - spam: "email : <the email's first words> . spam or ham ?" → "spam" | "ham"; OOD: hard ham and
 *    the second spam collection (SpamAssassin).
 * The tokenizer is word-level (WordPiece over whole words: the vocabulary is the task words, the
 * number words and the most frequent words of the pretraining and task texts; others are [UNK]).
 * Layout as the other zoos: base/, finetunes/<task>/, tasks/<task>.jsonl (probe, validation, test,
 * ood; read by loadTaskData), train/<task>.jsonl, zoo.json.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLmTaskJsonl } from '../data/lm-tasks';
import { IGNORED_LABEL, TaskSplit } from '../data/task-data';
import { pretrainingSentences, TEXT_TASKS, textSplits } from '../data/text';
import { throwIfAborted } from '../errors';
import { decoderFamily, zooDecoderConfig } from '../families/decoder';
import { modelOf, saveModel } from '../families/model';
import { Random } from '../kernels/random';
import { useBackend } from '../tensors/backend';
import { train } from '../train/train';
import type { TextZooScale } from './text';
import { BuildZooOptions, ownAccuracy, ZooEntry, ZooManifest } from './vision';

/** The text zoo's sizes, with a word list in place of a vocabulary size, grouped-query attention and a fine-tuning rate of its own. */
export interface LmZooScale extends Omit<TextZooScale, 'vocabularySize'> {
  /** Frequent words added to the vocabulary besides the task words. */
  commonWords: number;
  /** How many of the most frequent words the copy and reverse lists draw from. */
  listWords: number;
  kvHeads: number;
  /** Fine-tuning's learning rate: lower than pretraining's, so the fine-tunes stay near the base they are merged against. */
  finetuneLearningRate: number;
}

export const LM_SCALES: Record<'quick' | 'full', LmZooScale> = {
  quick: {
    tasks: ['arithmetic', 'copy', 'reverse', 'spam'],
    commonWords: 300,
    listWords: 40,
    sequenceLength: 24,
    hiddenSize: 48,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediateSize: 96,
    pretrainSentences: 3000,
    pretrainSteps: 150,
    finetuneSteps: 400,
    batchSize: 32,
    learningRate: 3e-3,
    finetuneLearningRate: 1e-3,
    sizes: { train: 1200, probe: 32, validation: 100, test: 200, ood: 200 },
  },
  full: {
    tasks: ['arithmetic', 'copy', 'reverse', 'spam'],
    commonWords: 1500,
    listWords: 64,
    sequenceLength: 32,
    hiddenSize: 128,
    layers: 4,
    heads: 4,
    kvHeads: 2,
    intermediateSize: 256,
    pretrainSentences: 20000,
    pretrainSteps: 1500,
    finetuneSteps: 600,
    batchSize: 32,
    learningRate: 2e-3,
    finetuneLearningRate: 7e-4,
    sizes: { train: 1500, probe: 64, validation: 300, test: 500, ood: 500 },
  },
};

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen'];
const TASK_WORDS = ['what', 'is', 'plus', 'and', 'make', 'copy', 'reverse', 'email', 'spam', 'or', 'ham', ':', '.', '?'];
const SPECIALS = ['[PAD]', '[UNK]'];

interface PromptedExample {
  prompt: string;
  completion: string;
}

/** Lower-cased words and punctuation runs, as the tokenizer's Whitespace pre-tokenizer splits them. */
const words = (text: string): string[] => text.toLowerCase().match(/\w+|[^\w\s]+/g) ?? [];

/** A word-level tokenizer.json: WordPiece over whole words, lower-cased, split on whitespace and punctuation. */
function tokenizerJson(vocabulary: string[]): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocabulary.map((w, i) => [w, i])) },
  };
}

function buildVocabulary(texts: string[], common: number): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of words(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const fixed = [...SPECIALS, ...TASK_WORDS, ...NUMBER_WORDS];
  const frequent = [...counts.entries()].filter(([w]) => !fixed.includes(w) && /^[a-z]+$/.test(w)).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, common).map(([w]) => w);
  return [...fixed, ...frequent];
}

/** The prompted examples of a task for each split, seeded. `listWords`: the words copy/reverse lists draw from. */
function taskExamples(task: string, scale: LmZooScale, seed: number, listWords: string[], oodWords: string[]): Record<string, PromptedExample[]> {
  const random = new Random(seed, `lm-task\u0000${task}`);
  const sizes = scale.sizes;
  const counts = { train: sizes.train, probe: sizes.probe, validation: sizes.validation, test: sizes.test };
  const draw = (make: () => PromptedExample, count: number) => Array.from({ length: count }, make);
  if (task === 'arithmetic') {
    // Sums of two numbers 0..9; every split draws from all pairs (there are only 100).
    const pair = () => [random.nextUint32() % 10, random.nextUint32() % 10];
    const ask = (style: 'plus' | 'make') => () => {
      const [a, b] = pair();
      return style === 'plus' ? { prompt: `what is ${NUMBER_WORDS[a]} plus ${NUMBER_WORDS[b]} ?`, completion: ` ${NUMBER_WORDS[a + b]}` } : { prompt: `${NUMBER_WORDS[a]} and ${NUMBER_WORDS[b]} make`, completion: ` ${NUMBER_WORDS[a + b]}` };
    };
    return { ...Object.fromEntries(Object.entries(counts).map(([s, n]) => [s, draw(ask('plus'), n)])), ood: draw(ask('make'), sizes.ood) };
  }
  if (task === 'copy' || task === 'reverse') {
    // OOD: lists of words the training lists never use (the next most frequent ones).
    const list = (pool: string[]) => () => {
      const chosen = Array.from({ length: 3 }, () => pool[random.nextUint32() % pool.length]);
      const answer = task === 'copy' ? chosen : [...chosen].reverse();
      return { prompt: `${task} : ${chosen.join(' ')} .`, completion: ` ${answer.join(' ')}` };
    };
    return { ...Object.fromEntries(Object.entries(counts).map(([s, n]) => [s, draw(list(listWords), n)])), ood: draw(list(oodWords), sizes.ood) };
  }
  if (task === 'spam') {
    const source = TEXT_TASKS.spam();
    const splits = textSplits(source, sizes, seed);
    const budget = scale.sequenceLength - 9;
    const asPrompt = (e: { text: string; label: number }) => ({ prompt: `email : ${words(e.text).slice(0, budget).join(' ')} . spam or ham ?`, completion: e.label === 1 ? ' spam' : ' ham' });
    return Object.fromEntries(Object.entries(splits).map(([s, examples]) => [s, examples.map(asPrompt)]));
  }
  throw new Error(`unknown LM zoo task "${task}" (known: arithmetic, copy, reverse, spam)`);
}

function jsonl(header: Record<string, unknown>, bySplit: Record<string, PromptedExample[]>): string {
  const lines = [JSON.stringify(header)];
  for (const [split, examples] of Object.entries(bySplit)) for (const e of examples) lines.push(JSON.stringify({ split, ...e }));
  return lines.join('\n') + '\n';
}

/** Pretraining sequences: each sentence's tokens, every one after the first scored (next-token loss). */
function pretrainingSplit(tokenize: (text: string) => number[], sentences: string[], length: number): TaskSplit {
  const rows = sentences.map((s) => tokenize(s).slice(0, length)).filter((ids) => ids.length >= 4);
  const inputs = new Int32Array(rows.length * length);
  const labels = new Int32Array(rows.length * length).fill(IGNORED_LABEL);
  rows.forEach((ids, i) => {
    inputs.set(ids, i * length);
    labels.set(ids.slice(1), i * length + 1);
  });
  return { inputs, exampleShape: [length], labels, count: rows.length, labelsPerExample: length };
}

export async function buildLmZoo(options: BuildZooOptions<LmZooScale>): Promise<ZooManifest> {
  const started = Date.now();
  const backend = await useBackend();
  const scale = options.scale ?? LM_SCALES[options.quick ? 'quick' : 'full'];
  const log = options.log ?? (() => undefined);
  const sentences = pretrainingSentences(scale.pretrainSentences, options.seed);
  const spamTexts = scale.tasks.includes('spam') ? TEXT_TASKS.spam().inDomain.map((e) => e.text) : [];
  const vocabulary = buildVocabulary([...sentences, ...spamTexts], scale.commonWords);
  const firstCommon = SPECIALS.length + TASK_WORDS.length + NUMBER_WORDS.length;
  const listWords = vocabulary.slice(firstCommon, firstCommon + scale.listWords);
  const oodWords = vocabulary.slice(firstCommon + scale.listWords, firstCommon + 2 * scale.listWords);
  for (const dir of ['base', 'tasks', 'train']) mkdirSync(join(options.out, dir), { recursive: true });
  const tokenizerFile = join(options.out, 'tokenizer.json');
  writeFileSync(tokenizerFile, JSON.stringify(tokenizerJson(vocabulary)) + '\n');

  // Task files: the evaluation splits in tasks/, the training split in train/, both read back by the JSONL loader.
  const splits = new Map<string, Record<string, TaskSplit>>();
  for (const task of scale.tasks) {
    const examples = taskExamples(task, scale, options.seed, listWords, oodWords);
    const { train: trainExamples, ...evaluation } = examples;
    const header = { task, tokenizer: '../tokenizer.json', description: `LM zoo task ${task}: prompt → completion, exact match of the greedy completion`, seed: options.seed };
    writeFileSync(join(options.out, 'tasks', `${task}.jsonl`), jsonl(header, evaluation));
    writeFileSync(join(options.out, 'train', `${task}.jsonl`), jsonl(header, { train: trainExamples }));
    const loaded: Record<string, TaskSplit> = { ...Object.fromEntries(loadLmTaskJsonl(join(options.out, 'tasks', `${task}.jsonl`)).splits), train: loadLmTaskJsonl(join(options.out, 'train', `${task}.jsonl`)).splits.get('train')! };
    const longest = Math.max(...Object.values(loaded).map((s) => s.exampleShape[0]));
    if (longest > scale.sequenceLength) throw new Error(`LM zoo task ${task}: examples of ${longest} tokens exceed the zoo's ${scale.sequenceLength} positions`);
    splits.set(task, loaded);
  }

  const family = decoderFamily;
  const config = zooDecoderConfig({ vocabSize: vocabulary.length, hiddenSize: scale.hiddenSize, intermediateSize: scale.intermediateSize, layers: scale.layers, heads: scale.heads, kvHeads: scale.kvHeads, maxPositions: scale.sequenceLength });
  const base = modelOf(family, config, family.initTrunk(config, options.seed));
  const index = new Map(vocabulary.map((w, i) => [w, i]));
  const tokenize = (text: string) => words(text).map((w) => index.get(w) ?? 1);
  const pretraining = pretrainingSplit(tokenize, sentences, scale.sequenceLength);
  const trainable = [...base.params.keys()];
  log(`pretraining the decoder with next-token loss on ${pretraining.count} sentences (${scale.pretrainSteps} steps)`);
  const { finalLoss } = await train(base, [{ task: 'pretrain', split: pretraining }], { steps: scale.pretrainSteps, batchSize: scale.batchSize, learningRate: scale.learningRate, seed: options.seed, trainable, onProgress: options.onProgress, signal: options.signal });
  log(`  next-token loss ${finalLoss.toFixed(3)}`);
  saveModel(join(options.out, 'base'), base, { zoo_seed: String(options.seed) });
  copyFileSync(tokenizerFile, join(options.out, 'base', 'tokenizer.json'));

  const finetunes: ZooEntry[] = [];
  for (const [t, task] of scale.tasks.entries()) {
    throwIfAborted(options.signal);
    const model = modelOf(family, config, new Map([...base.params].map(([n, v]) => [n, v.slice()])));
    const taskSplits = splits.get(task)!;
    log(`fine-tuning on ${task} (${scale.finetuneSteps} steps)`);
    await train(model, [{ task, split: taskSplits.train }], { steps: scale.finetuneSteps, batchSize: scale.batchSize, learningRate: scale.finetuneLearningRate, seed: options.seed + 1 + t, trainable, onProgress: options.onProgress, signal: options.signal });
    const modelDir = join('finetunes', task);
    saveModel(join(options.out, modelDir), model, { zoo_seed: String(options.seed), task });
    copyFileSync(tokenizerFile, join(options.out, modelDir, 'tokenizer.json'));
    const accuracy = await ownAccuracy(model, task, taskSplits);
    log(`  ${task}: exact match test ${(accuracy.test * 100).toFixed(1)}%, ood ${(accuracy.ood * 100).toFixed(1)}%`);
    finetunes.push({ task, classes: vocabulary.length, description: `LM zoo task ${task}`, model: modelDir, data: join('tasks', `${task}.jsonl`), accuracy });
  }
  const manifest: ZooManifest = { suite: 'lm', seed: options.seed, quick: options.quick, family: family.name, backend, base: 'base', finetunes, scale: { ...scale }, seconds: (Date.now() - started) / 1000 };
  writeFileSync(join(options.out, 'zoo.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
