/**
 * Merging models whose vocabularies differ (mergekit's `tokenizer_source` / `tokenizer:`): the
 * output vocabulary is the base model's, one model's, or the union of all of them; every model's
 * embedding rows are then laid out in the output's token order, and a token a model lacks takes a
 * row from elsewhere, by mergekit's rules (its PermutedEmbeddings):
 *   - a `tokens:` entry names where it comes from (a model, a model's token, or zeros);
 *   - a token only one model has takes that model's row;
 *   - a token no model has is zero;
 *   - a token the base has takes the base's row;
 *   - otherwise the mean of the rows of the models that have it.
 * A model keeps its own row for a token it has, unless the entry says `force`.
 * One deliberate difference: mergekit appends the union's new tokens in the order of a hash map
 * (it differs from run to run); here they follow the models' order and each model's token ids, so
 * the same merge always gives the same vocabulary.
 */
import { MergeInputError } from '../errors';
import { addTokens, AddedToken, largestId, plainAddedToken, readTokenizer, stripTokenizer, Tokenizer } from './tokenizer-json';

export type TokenizerSource = { kind: 'base' } | { kind: 'union' } | { kind: 'model'; model: string };

export type TokenEmbeddingSource = { kind: 'model'; model: string } | { kind: 'zero' } | { kind: 'model_token'; model: string; token?: string; tokenId?: number };

export interface TokenEmbedding {
  source: TokenEmbeddingSource;
  force: boolean;
}

export interface TokenizerSettings {
  source: TokenizerSource;
  /** mergekit's `tokenizer.tokens`: per token, where its embedding comes from. Each is added to the vocabulary. */
  tokens: ReadonlyMap<string, TokenEmbedding>;
  /** Embedding rows are padded with zeros to a multiple of this. */
  padToMultipleOf?: number;
}

/** A model of the merge: its directory, and how many embedding rows it has (config.json vocab_size, or the tensor's rows). */
export interface VocabularyModel {
  directory: string;
  rows: number;
}

export interface MergedVocabulary {
  /** The output tokenizer. */
  tokenizer: Tokenizer;
  /** The tokenizer it was built from (its other files are copied beside the output). */
  from: Tokenizer;
  /** Tokens in the output vocabulary. */
  size: number;
  /** Rows of the output embeddings: the size, padded. */
  rows: number;
  /** Per model directory: for each output row, the model's row for that token, or -1. */
  permutations: Map<string, Int32Array>;
  /** Per model directory: its own vocabulary (for tokens: entries that name a model's token). */
  vocabularies: Map<string, Map<string, number>>;
  /** The output's tokens by id. */
  tokens: string[];
}

function tokenizerOf(model: VocabularyModel, base: VocabularyModel, baseTokenizer: Tokenizer): Tokenizer {
  const tokenizer = readTokenizer(model.directory);
  if (tokenizer) return tokenizer;
  // mergekit takes a model without a tokenizer to share the base's; only safe when the rows agree.
  if (model.rows !== base.rows) {
    throw new MergeInputError(`${model.directory}: has no tokenizer.json, and its ${model.rows} embedding rows differ from the ${base.rows} of ${base.directory}, so its vocabulary cannot be taken to be the same`);
  }
  return baseTokenizer;
}

/**
 * The output vocabulary and every model's permutation into it. `models` lists every model of
 * the merge (the base among them, when there is one); `base` is the base model, or the first.
 */
export function buildVocabulary(settings: TokenizerSettings, models: readonly VocabularyModel[], base: VocabularyModel): MergedVocabulary {
  const rawBase = readTokenizer(base.directory);
  if (!rawBase) throw new MergeInputError(`${base.directory}: has no tokenizer.json, which tokenizer_source needs (the base model's vocabulary, or the first model's without a base)`);
  const baseTokenizer = stripTokenizer(rawBase, base.rows);
  const tokenizers = new Map<string, Tokenizer>([[base.directory, baseTokenizer]]);
  for (const model of models) if (!tokenizers.has(model.directory)) tokenizers.set(model.directory, tokenizerOf(model, base, baseTokenizer));

  let output: Tokenizer;
  let from: Tokenizer;
  if (settings.source.kind === 'model') {
    const directory = settings.source.model;
    const own = readTokenizer(directory);
    if (!own) throw new MergeInputError(`tokenizer_source: ${directory} has no tokenizer.json`);
    output = own;
    from = own;
  } else if (settings.source.kind === 'base') {
    output = baseTokenizer;
    from = rawBase;
  } else {
    output = unionOf(baseTokenizer, models, tokenizers);
    from = rawBase;
  }
  output = addTokens(output, [...settings.tokens.keys()].map(plainAddedToken));

  const size = largestId(output.vocabulary.values()) + 1;
  const tokens: string[] = new Array<string>(size).fill('');
  for (const [token, id] of output.vocabulary) tokens[id] = token;
  const pad = settings.padToMultipleOf ?? 1;
  const rows = Math.ceil(size / pad) * pad;

  const permutations = new Map<string, Int32Array>();
  const vocabularies = new Map<string, Map<string, number>>();
  for (const model of models) {
    const own = tokenizers.get(model.directory)!.vocabulary;
    vocabularies.set(model.directory, own);
    const permutation = new Int32Array(rows).fill(-1);
    for (const [token, id] of output.vocabulary) {
      const row = own.get(token);
      if (row !== undefined && row < model.rows) permutation[id] = row;
    }
    permutations.set(model.directory, permutation);
  }
  return { tokenizer: output, from, size, rows, permutations, vocabularies, tokens };
}

/**
 * mergekit's union: the base's vocabulary, then every other model's pieces it lacks (as plain
 * added tokens), then every model's added tokens (keeping their settings, the first model's when
 * two differ). Tokens at ids past a model's embedding rows are not taken.
 */
function unionOf(base: Tokenizer, models: readonly VocabularyModel[], tokenizers: ReadonlyMap<string, Tokenizer>): Tokenizer {
  const pieces: string[] = [];
  const seen = new Set<string>();
  const added = new Map<string, Omit<AddedToken, 'id'>>();
  const ordered = [...tokenizers.keys()];
  for (const directory of ordered) {
    const tokenizer = tokenizers.get(directory)!;
    const rows = models.find((m) => m.directory === directory)?.rows ?? Infinity;
    const addedContents = new Set((tokenizer.json.added_tokens ?? []).map((t) => t.content));
    const byId = [...tokenizer.vocabulary].sort((a, b) => a[1] - b[1]);
    for (const [token, id] of byId) {
      if (id >= rows || addedContents.has(token) || seen.has(token)) continue;
      seen.add(token);
      pieces.push(token);
    }
    for (const token of [...(tokenizer.json.added_tokens ?? [])].sort((a, b) => a.id - b.id)) {
      if (token.id >= rows || added.has(token.content)) continue;
      const { id: _id, ...settings } = token;
      void _id;
      added.set(token.content, settings);
    }
  }
  const fresh = pieces.filter((token) => !base.vocabulary.has(token) && !added.has(token)).map(plainAddedToken);
  return addTokens(base, [...fresh, ...added.values()]);
}

/**
 * One embedding tensor's rows, for its inputs (in the job's order): each input's row per output
 * row (or -1), and where a row comes from when an input lacks the token or it is forced.
 * fallbackInput: an input's index, or ZERO_ROW, or MEAN_ROW (the mean of the inputs that have it).
 */
export interface EmbeddingRows {
  rows: number;
  sourceRows: Int32Array[];
  fallbackInput: Int32Array;
  fallbackRow: Int32Array;
  forced: Uint8Array;
  /** With embed_slerp: t, and the rows not every input has take their fallback after the SLERP. */
  slerpT?: number;
}

export const ZERO_ROW = -1;
export const MEAN_ROW = -2;

/**
 * The rows of one embedding tensor whose inputs come from `inputs` (model directories, in job
 * order, with `inputRows` rows each); `base` is the base model's directory when the merge has one. Throws when a `tokens:`
 * entry names a model that is not among the inputs, or a token that model lacks.
 */
export function embeddingRows(
  vocabulary: MergedVocabulary,
  settings: TokenizerSettings,
  inputs: readonly string[],
  inputRows: readonly number[],
  base: string | undefined,
  tensor: string,
): EmbeddingRows {
  const { rows, size } = vocabulary;
  const sourceRows = inputs.map((directory) => vocabulary.permutations.get(directory)!);
  const fallbackInput = new Int32Array(rows).fill(ZERO_ROW);
  const fallbackRow = new Int32Array(rows);
  const forced = new Uint8Array(rows);
  const baseIndex = base === undefined ? -1 : inputs.indexOf(base);
  const inputOf = (model: string, token: string): number => {
    const index = inputs.indexOf(model);
    if (index < 0) throw new MergeInputError(`tokenizer.tokens["${token}"]: ${model} is not among the models of tensor "${tensor}"`);
    return index;
  };
  for (let id = 0; id < size; id++) {
    const token = vocabulary.tokens[id];
    const entry = settings.tokens.get(token);
    if (entry) {
      forced[id] = entry.force ? 1 : 0;
      const source = entry.source;
      if (source.kind === 'zero') continue;
      const index = inputOf(source.model, token);
      if (source.kind === 'model') {
        const row = sourceRows[index][id];
        if (row < 0) throw new MergeInputError(`tokenizer.tokens["${token}"]: ${source.model} has no token "${token}"`);
        fallbackInput[id] = index;
        fallbackRow[id] = row;
      } else {
        const own = vocabulary.vocabularies.get(source.model)!;
        const row = source.tokenId ?? own.get(source.token!);
        if (row === undefined) throw new MergeInputError(`tokenizer.tokens["${token}"].source.token: ${source.model} has no token "${source.token}"`);
        if (row < 0 || row >= inputRows[index]) throw new MergeInputError(`tokenizer.tokens["${token}"].source: token id ${row} is out of range for the ${inputRows[index]} rows of "${tensor}" in ${source.model}`);
        fallbackInput[id] = index;
        fallbackRow[id] = row;
      }
      continue;
    }
    const present = sourceRows.map((p) => p[id] >= 0);
    const count = present.filter(Boolean).length;
    if (count === 0) continue;
    if (count === 1) {
      const donor = present.indexOf(true);
      fallbackInput[id] = donor;
      fallbackRow[id] = sourceRows[donor][id];
    } else if (baseIndex >= 0 && present[baseIndex]) {
      fallbackInput[id] = baseIndex;
      fallbackRow[id] = sourceRows[baseIndex][id];
    } else {
      fallbackInput[id] = MEAN_ROW;
    }
  }
  return { rows, sourceRows, fallbackInput, fallbackRow, forced };
}

/**
 * Lays one input's rows out in the output's order (`out`: rows × width), taking each missing or
 * forced row from its fallback. `inputsValues` are every input's rows as read, in job order.
 */
export function permuteRows(embedding: EmbeddingRows, inputIndex: number, inputsValues: readonly Float32Array[], width: number, out: Float32Array): Float32Array {
  const own = embedding.sourceRows[inputIndex];
  const values = inputsValues[inputIndex];
  for (let r = 0; r < embedding.rows; r++) {
    const target = r * width;
    const row = own[r];
    if (row >= 0 && embedding.forced[r] === 0) {
      out.set(values.subarray(row * width, row * width + width), target);
    } else {
      fallbackInto(embedding, r, inputsValues, width, out, target);
    }
  }
  return out;
}

/** Writes output row `r`'s fallback (zero, one input's row, or the mean of the inputs that have it) at `target`. */
export function fallbackInto(embedding: EmbeddingRows, r: number, inputsValues: readonly Float32Array[], width: number, out: Float32Array, target: number): void {
  const from = embedding.fallbackInput[r];
  if (from >= 0) {
    const row = embedding.fallbackRow[r];
    out.set(inputsValues[from].subarray(row * width, row * width + width), target);
    return;
  }
  out.fill(0, target, target + width);
  if (from === ZERO_ROW) return;
  let count = 0;
  embedding.sourceRows.forEach((rowsOf, i) => {
    const row = rowsOf[r];
    if (row < 0) return;
    count++;
    const values = inputsValues[i];
    for (let k = 0; k < width; k++) out[target + k] += values[row * width + k];
  });
  for (let k = 0; k < width; k++) out[target + k] /= count;
}
