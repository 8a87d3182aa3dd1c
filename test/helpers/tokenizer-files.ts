/**
 * Small tokenizer.json files in the two styles decoder LMs ship: byte-level BPE (GPT-2 / Llama 3 /
 * Qwen2: the 256 byte symbols, merges, a BOS added by a template) and SentencePiece-style BPE
 * (Llama 2 / Mistral: ▁ for spaces prepended by the normalizer, byte fallback <0xNN>, <s> added).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const template = (token: string, id: number) => ({ type: 'TemplateProcessing', single: [{ SpecialToken: { id: token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { [token]: { id: token, ids: [id], tokens: [token] } } });

/** GPT-2's bytes_to_unicode: the printable symbol that stands for each byte. */
function byteSymbols(): string[] {
  const bytes: number[] = [];
  for (let i = 33; i <= 126; i++) bytes.push(i);
  for (let i = 161; i <= 172; i++) bytes.push(i);
  for (let i = 174; i <= 255; i++) bytes.push(i);
  const codes = [...bytes];
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!bytes.includes(b)) (bytes.push(b), codes.push(256 + extra++));
  const symbols = new Array<string>(256);
  bytes.forEach((b, i) => (symbols[b] = String.fromCodePoint(codes[i])));
  return symbols;
}

export function writeByteLevelTokenizer(dir: string): string {
  const vocab: Record<string, number> = {};
  byteSymbols().forEach((s) => (vocab[s] = Object.keys(vocab).length));
  const merges = [['Ġ', 't'], ['Ġt', 'h'], ['Ġth', 'e']];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const bos = Object.keys(vocab).length;
  const json = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(bos, '<|begin_of_text|>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: template('<|begin_of_text|>', bos),
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: { ...vocab, '<|begin_of_text|>': bos }, merges: merges.map((m) => m.join(' ')) },
  };
  const file = join(dir, 'byte-level.json');
  writeFileSync(file, JSON.stringify(json));
  return file;
}

export function writeSentencePieceTokenizer(dir: string): string {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = Object.keys(vocab).length;
  for (const piece of ['▁', 't', 'h', 'e', 'i', 's', '▁t', '▁th', '▁the', '▁i', '▁is', 'c', 'a', 'f']) vocab[piece] = Object.keys(vocab).length;
  const json = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => special(id, content)),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: template('<s>', 1),
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: ['▁ t', '▁t h', '▁th e', '▁ i', '▁i s'] },
  };
  const file = join(dir, 'sentencepiece.json');
  writeFileSync(file, JSON.stringify(json));
  return file;
}
