/**
 * Language-model task data as JSONL, one example per line:
 *
 *   {"task": "arithmetic", "tokenizer": "tokenizer.json", "description": "…"}    (optional header)
 *   {"split": "probe", "prompt": "two plus three is", "completion": " five"}
 *   {"split": "test", "input_ids": [1, 15, 27, 9], "labels": [-100, -100, 27, 9]}
 *
 * Text is tokenized with the header's Hugging Face tokenizer.json (a path relative to the file, or a
 * directory holding it), through @huggingface/tokenizers: the prompt with the tokenizer's special
 * tokens (a Llama tokenizer's BOS), the completion without. Labels follow transformers' causal-LM
 * convention: label t is the token at t, −100 where nothing is scored (the prompt). Each split is
 * right-padded to its longest example with unscored positions, so the loss is the mean NLL over
 * completion tokens and accuracy the exact match of the greedy completion. Every error names the
 * file and line.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { CheckpointError } from '../errors';
import { IGNORED_LABEL, TaskData, TaskSplit } from './task-data';

interface Example {
  ids: number[];
  labels: number[];
}

export interface LmTokenizer {
  encode(text: string, specialTokens: boolean): number[];
  vocabularySize: number;
  padId: number;
  file: string;
}

/** A Hugging Face tokenizer.json (and the tokenizer_config.json beside it, if any). */
export function readTokenizer(path: string): LmTokenizer {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!existsSync(file)) throw new Error(`${file}: no such tokenizer file`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    // Without the parser's message: it quotes the file's content.
    throw new Error(`${file}: not a tokenizer.json (not valid JSON)`);
  }
  const configFile = join(dirname(file), 'tokenizer_config.json');
  const config = existsSync(configFile) ? (JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>) : {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (err) {
    throw new Error(`${file}: the tokenizer cannot be built (${(err as Error).message})`);
  }
  const vocabulary = tokenizer.get_vocab(true);
  const vocabularySize = Math.max(...vocabulary.values()) + 1;
  const padToken = typeof config.pad_token === 'string' ? config.pad_token : undefined;
  return {
    encode: (text, specialTokens) => tokenizer.encode(text, { add_special_tokens: specialTokens }).ids,
    vocabularySize,
    padId: (padToken && tokenizer.token_to_id(padToken)) ?? 0,
    file,
  };
}

function parseLine(file: string, number: number, line: string): Record<string, unknown> {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch (err) {
    throw new CheckpointError(`${file}:${number}`, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new CheckpointError(`${file}:${number}`, 'must be a JSON object');
  return record as Record<string, unknown>;
}

function tokenIds(value: unknown, field: string, where: string, allowIgnored: boolean): number[] {
  if (!Array.isArray(value) || value.length === 0) throw new CheckpointError(where, `"${field}" must be a non-empty array of token ids`);
  value.forEach((t, i) => {
    if (!Number.isInteger(t) || ((t as number) < 0 && !(allowIgnored && t === IGNORED_LABEL))) {
      throw new CheckpointError(where, `"${field}"[${i}] is ${JSON.stringify(t)}, not a token id${allowIgnored ? ` or ${IGNORED_LABEL}` : ''}`);
    }
  });
  return value as number[];
}

/** The tokenizer an LM task's JSONL names in its header (absolute), or undefined; reads only the first line. */
export function lmTaskTokenizerPath(path: string): string | undefined {
  if (!path.endsWith('.jsonl')) return undefined;
  const file = resolve(path);
  const first = readFileSync(file, 'utf8').split('\n').find((line) => line.trim() !== '');
  if (first === undefined) return undefined;
  const record = parseLine(file, 1, first);
  return record.split === undefined && typeof record.tokenizer === 'string' ? resolve(dirname(file), record.tokenizer) : undefined;
}

/** Reads an LM task's JSONL into task data: token inputs and token labels per split. */
export function loadLmTaskJsonl(path: string): TaskData {
  const file = resolve(path);
  const lines = readFileSync(file, 'utf8').split('\n');
  let header: Record<string, unknown> = {};
  let tokenizer: LmTokenizer | undefined;
  const bySplit = new Map<string, Example[]>();
  let maxId = -1;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    const record = parseLine(file, i + 1, line);
    if (record.split === undefined) {
      if (bySplit.size > 0 || Object.keys(header).length > 0) throw new CheckpointError(where, 'has no "split"; only the first line may be a header');
      header = record;
      if (header.tokenizer !== undefined) {
        if (typeof header.tokenizer !== 'string') throw new CheckpointError(where, '"tokenizer" must be a path');
        try {
          tokenizer = readTokenizer(resolve(dirname(file), header.tokenizer));
        } catch (err) {
          throw new CheckpointError(where, (err as Error).message);
        }
      }
      return;
    }
    if (typeof record.split !== 'string' || !/^[A-Za-z0-9_-]+$/.test(record.split)) throw new CheckpointError(where, `"split" must be a name (letters, digits, _ and -), got ${JSON.stringify(record.split)}`);
    let example: Example;
    if (record.input_ids !== undefined || record.labels !== undefined) {
      const ids = tokenIds(record.input_ids, 'input_ids', where, false);
      const labels = tokenIds(record.labels, 'labels', where, true);
      if (labels.length !== ids.length) throw new CheckpointError(where, `"labels" has ${labels.length} entries, "input_ids" ${ids.length}`);
      const differs = labels.findIndex((y, t) => y !== IGNORED_LABEL && y !== ids[t]);
      if (differs >= 0) throw new CheckpointError(where, `"labels"[${differs}] is ${labels[differs]} but "input_ids"[${differs}] is ${ids[differs]}: labels are the input tokens (transformers shifts them) or ${IGNORED_LABEL}`);
      example = { ids, labels };
    } else {
      if (typeof record.prompt !== 'string' || typeof record.completion !== 'string') throw new CheckpointError(where, 'needs "prompt" and "completion" (text), or "input_ids" and "labels"');
      if (!tokenizer) throw new CheckpointError(where, 'has text but the file names no tokenizer: add a first line {"tokenizer": "path/to/tokenizer.json"}');
      const prompt = tokenizer.encode(record.prompt, true);
      const completion = tokenizer.encode(record.completion, false);
      if (completion.length === 0) throw new CheckpointError(where, 'the completion tokenizes to no tokens: nothing to score');
      if (prompt.length === 0) throw new CheckpointError(where, 'the prompt tokenizes to no tokens: the first completion token would have nothing to be predicted from');
      example = { ids: [...prompt, ...completion], labels: [...prompt.map(() => IGNORED_LABEL), ...completion] };
    }
    if (example.labels[0] !== IGNORED_LABEL) throw new CheckpointError(where, 'the first token cannot be scored (nothing comes before it): its label must be -100');
    if (!example.labels.some((y) => y !== IGNORED_LABEL)) throw new CheckpointError(where, 'no token is scored (every label is -100)');
    maxId = Math.max(maxId, ...example.ids);
    bySplit.set(record.split, [...(bySplit.get(record.split) ?? []), example]);
  });
  if (bySplit.size === 0) throw new CheckpointError(file, 'has no examples');
  const declared = header.vocab_size;
  if (declared !== undefined && (!Number.isInteger(declared) || (declared as number) <= maxId)) throw new CheckpointError(file, `header "vocab_size" ${JSON.stringify(declared)} must be an integer above every token id (the largest is ${maxId})`);
  const classes = (declared as number | undefined) ?? tokenizer?.vocabularySize ?? maxId + 1;
  if (maxId >= classes) throw new CheckpointError(file, `token id ${maxId} is outside the tokenizer's vocabulary of ${classes}`);
  const splits = new Map<string, TaskSplit>();
  for (const [name, examples] of bySplit) {
    const length = Math.max(...examples.map((e) => e.ids.length));
    const inputs = new Int32Array(examples.length * length).fill(tokenizer?.padId ?? 0);
    const labels = new Int32Array(examples.length * length).fill(IGNORED_LABEL);
    examples.forEach((e, i) => {
      inputs.set(e.ids, i * length);
      labels.set(e.labels, i * length);
    });
    splits.set(name, { inputs, exampleShape: [length], labels, count: examples.length, labelsPerExample: length });
  }
  const task = typeof header.task === 'string' ? header.task : basename(file).replace(/\.jsonl$/, '');
  return { file, task, classes: Math.max(2, classes), description: typeof header.description === 'string' ? header.description : '', splits };
}
