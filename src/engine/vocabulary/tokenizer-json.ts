/**
 * A Hugging Face fast tokenizer's `tokenizer.json`, as far as merging needs it: the vocabulary
 * (the model's pieces and the added tokens, each with its id), cutting it to the rows a model's
 * embedding has, and appending tokens. The file is kept as parsed JSON so that everything we do
 * not touch (normalizer, pre-tokenizer, merges, post-processor) is written back unchanged.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MergeInputError } from '../errors';

/** An entry of `added_tokens`, as the tokenizers library writes it. */
export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

interface TokenizerModel {
  type?: string;
  /** BPE, WordPiece, WordLevel: piece → id. Unigram: [piece, score] pairs, the id being the index. */
  vocab?: Record<string, number> | Array<[string, number]>;
  merges?: Array<string | [string, string]>;
}

export interface TokenizerJson {
  added_tokens?: AddedToken[];
  model?: TokenizerModel;
  [key: string]: unknown;
}

export const TOKENIZER_FILE = 'tokenizer.json';

/** The files of a tokenizer that are copied beside a merged model. */
export const TOKENIZER_FILES = [TOKENIZER_FILE, 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'tokenizer.model', 'vocab.txt', 'vocab.json', 'merges.txt', 'chat_template.jinja'];

/** A model's tokenizer: where it was read, its JSON, and the vocabulary (pieces and added tokens). */
export interface Tokenizer {
  path: string;
  json: TokenizerJson;
  /** Every token the tokenizer knows, with its id (what transformers' get_vocab() returns). */
  vocabulary: Map<string, number>;
}

function modelVocabulary(json: TokenizerJson, path: string): Map<string, number> {
  const vocab = json.model?.vocab;
  if (vocab === undefined) throw new MergeInputError(`${path}: has no model.vocab (not a tokenizer the tokenizers library wrote?)`);
  if (Array.isArray(vocab)) return new Map(vocab.map(([piece], id) => [piece, id]));
  return new Map(Object.entries(vocab));
}

function vocabularyOf(json: TokenizerJson, path: string): Map<string, number> {
  const vocabulary = modelVocabulary(json, path);
  for (const token of json.added_tokens ?? []) vocabulary.set(token.content, token.id);
  return vocabulary;
}

/** The tokenizer in a model directory, or undefined when it has no tokenizer.json. */
export function readTokenizer(directory: string): Tokenizer | undefined {
  const path = join(directory, TOKENIZER_FILE);
  if (!existsSync(path)) return undefined;
  let json: TokenizerJson;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as TokenizerJson;
  } catch (err) {
    throw new MergeInputError(`${path}: is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new MergeInputError(`${path}: is not a JSON object`);
  if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) throw new MergeInputError(`${path}: added_tokens is not a list`);
  for (const [i, token] of (json.added_tokens ?? []).entries()) {
    if (typeof token?.content !== 'string' || !Number.isInteger(token.id) || token.id < 0) throw new MergeInputError(`${path}: added_tokens[${i}] needs a string content and a non-negative integer id`);
  }
  return { path, json, vocabulary: vocabularyOf(json, path) };
}

/**
 * The tokenizer without the tokens whose ids are `rows` or more (tokens the model's embedding has
 * no row for), as mergekit's get_stripped_tokenizer does: they leave the added tokens and the
 * vocabulary, and BPE merges that use them go too. Only BPE vocabularies can be cut.
 */
export function stripTokenizer(tokenizer: Tokenizer, rows: number): Tokenizer {
  const unused = [...tokenizer.vocabulary].filter(([, id]) => id >= rows).map(([token]) => token);
  if (unused.length === 0) return tokenizer;
  const model = tokenizer.json.model!;
  if (model.type !== 'BPE') {
    throw new MergeInputError(`${tokenizer.path}: ${unused.length} token(s) have ids beyond the model's ${rows} embedding rows (first "${unused[0]}"), and only a BPE tokenizer (this one is ${model.type ?? 'untyped'}) can be cut to fit`);
  }
  const gone = new Set(unused);
  const vocab = Object.fromEntries(Object.entries(model.vocab as Record<string, number>).filter(([token]) => !gone.has(token)));
  const merges = (model.merges ?? []).filter((merge) => !(typeof merge === 'string' ? merge.split(' ') : merge).some((piece) => gone.has(piece)));
  const json: TokenizerJson = { ...tokenizer.json, added_tokens: (tokenizer.json.added_tokens ?? []).filter((t) => t.id < rows), model: { ...model, vocab, merges } };
  return { path: tokenizer.path, json, vocabulary: vocabularyOf(json, tokenizer.path) };
}

/** The largest id, or -1 for none: a loop, since spreading a 150,000-token vocabulary into Math.max overflows the stack. */
export function largestId(ids: Iterable<number>): number {
  let largest = -1;
  for (const id of ids) if (id > largest) largest = id;
  return largest;
}

/** A token added the way transformers' add_tokens adds a plain string: normalised, not special. */
export function plainAddedToken(content: string): Omit<AddedToken, 'id'> {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };
}

/**
 * The tokenizer with `tokens` added as the tokenizers library adds them: a token it already knows
 * keeps its id (and, if it was a piece of the model, becomes an added token too; if it was an
 * added token, takes the new settings); a new one takes the next id.
 */
export function addTokens(tokenizer: Tokenizer, tokens: ReadonlyArray<Omit<AddedToken, 'id'>>): Tokenizer {
  const added = [...(tokenizer.json.added_tokens ?? [])];
  const vocabulary = new Map(tokenizer.vocabulary);
  let next = largestId(vocabulary.values()) + 1;
  for (const token of tokens) {
    // The tokenizers library replaces an added token's settings when it is added again.
    const earlier = added.findIndex((t) => t.content === token.content);
    if (earlier >= 0) {
      added[earlier] = { ...token, id: added[earlier].id };
      continue;
    }
    const known = vocabulary.get(token.content);
    const id = known ?? next++;
    added.push({ ...token, id });
    vocabulary.set(token.content, id);
  }
  added.sort((a, b) => a.id - b.id);
  return { path: tokenizer.path, json: { ...tokenizer.json, added_tokens: added }, vocabulary };
}

/** The added tokens of `tokenizer` that `original` lacks, for tokenizer_config.json's added_tokens_decoder. */
export function newAddedTokens(tokenizer: Tokenizer, original: Tokenizer): AddedToken[] {
  const had = new Set((original.json.added_tokens ?? []).map((t) => t.content));
  return (tokenizer.json.added_tokens ?? []).filter((t) => !had.has(t.content));
}
