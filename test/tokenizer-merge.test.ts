/**
 * Merging models whose vocabularies differ (mergekit's tokenizer_source, tokenizer:, embed_slerp).
 * The fixtures (test/fixtures/mergekit-tokenizer, from scripts/mergekit-tokenizer-reference.py)
 * hold three small Llama-named checkpoints with real Hugging Face BPE tokenizers — a base, a chat
 * fine-tune with two added tokens, and a model whose vocabulary was trained on other text and whose
 * embedding has padding rows — and, per case, the output vocabulary built with the tokenizers
 * library the way mergekit builds it, with the embeddings laid out and merged by mergekit's rules.
 * The written tokenizer.json is also loaded by another implementation (tokenizers.js) and must
 * encode texts as the tokenizers library's output does.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { buildVocabulary } from '../src/engine/vocabulary/merge-vocabulary';
import { join } from 'node:path';
import { Tokenizer as TokenizersJs } from '@huggingface/tokenizers';
import { openCheckpoint } from '../src/engine/checkpoint/checkpoint';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { readAllTensors as tensors, removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

const FIXTURES = join(__dirname, 'fixtures', 'mergekit-tokenizer');

const CASES: Record<string, string> = {
  union_linear: `merge_method: linear
tokenizer_source: union
models:
  - {model: base, parameters: {weight: 0.5}}
  - {model: chat, parameters: {weight: 0.3}}
  - {model: other, parameters: {weight: 0.2}}
`,
  base_task_arithmetic: `merge_method: task_arithmetic
base_model: base
tokenizer_source: base
models:
  - {model: chat, parameters: {weight: 1.0}}
  - {model: other, parameters: {weight: 0.5}}
`,
  model_embed_slerp: `merge_method: slerp
base_model: base
tokenizer_source: model:chat
models:
  - model: base
  - model: chat
parameters: {t: 0.3, embed_slerp: true}
`,
  tokens_padded: `merge_method: linear
tokenizer:
  source: union
  pad_to_multiple_of: 16
  tokens:
    "<|im_start|>": {source: {kind: model_token, model: base, token: "<s>"}}
    "<|im_end|>": {source: chat, force: true}
    "<extra_zero>": {source: {kind: zero}}
models:
  - {model: base, parameters: {weight: 0.5}}
  - {model: chat, parameters: {weight: 0.3}}
  - {model: other, parameters: {weight: 0.2}}
`,
};

function shapes(path: string): Record<string, number[]> {
  const checkpoint = openCheckpoint(path);
  return Object.fromEntries(checkpoint.names.map((n) => [n, [...checkpoint.tensors.get(n)!.shape]]));
}

/** Our tokenizer.json's vocabulary: the model's pieces and the added tokens, by id. */
function vocabularyOf(directory: string): Record<string, number> {
  const json = JSON.parse(readFileSync(join(directory, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: Array<{ id: number; content: string }> };
  const all: Record<string, number> = { ...json.model.vocab };
  for (const token of json.added_tokens) all[token.content] = token.id;
  return Object.fromEntries(Object.entries(all).sort((a, b) => a[1] - b[1]));
}

async function merge(name: string, yaml = CASES[name], threads = 0): Promise<string> {
  const out = join(tempDir(), 'out');
  await runMerge(planMerge(parseMergeConfig(yaml, `${name}.yml`, FIXTURES)), out, { threads });
  return out;
}

describe.each(Object.keys(CASES))('%s agrees with mergekit', (name) => {
  const expectedDir = join(FIXTURES, 'expected', name);
  let out: string;
  beforeAll(async () => {
    out = await merge(name);
  });

  it('has the same vocabulary and added tokens, and config.json says its size', () => {
    const expectedVocabulary = JSON.parse(readFileSync(join(expectedDir, 'vocab.json'), 'utf8')) as Record<string, number>;
    expect(vocabularyOf(out)).toEqual(expectedVocabulary);
    const added = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8')).added_tokens;
    expect(added).toEqual(JSON.parse(readFileSync(join(expectedDir, 'added_tokens.json'), 'utf8')));
    const rows = shapes(join(expectedDir, 'model.safetensors'))['model.embed_tokens.weight'][0];
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).vocab_size).toBe(rows);
    expect(shapes(out)).toEqual(shapes(join(expectedDir, 'model.safetensors')));
  });

  it('has the same tensors, to float32 rounding', () => {
    const expected = tensors(join(expectedDir, 'model.safetensors'));
    const actual = tensors(out);
    for (const [tensor, want] of expected) {
      const got = actual.get(tensor)!;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      // Inputs are standard normal: a few float32 ulps of values up to ~4.
      expect({ tensor, worst: worst < 4e-6 ? 'within rounding' : worst }).toEqual({ tensor, worst: 'within rounding' });
    }
  });

  it('writes a tokenizer that another implementation loads and that encodes as the reference does', () => {
    const json = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'));
    const config = existsSync(join(out, 'tokenizer_config.json')) ? JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')) : {};
    const tokenizer = new TokenizersJs(json, config);
    const encodings = JSON.parse(readFileSync(join(expectedDir, 'encodings.json'), 'utf8')) as Record<string, number[]>;
    for (const [text, ids] of Object.entries(encodings)) {
      expect({ text, ids: tokenizer.encode(text, { add_special_tokens: false }).ids }).toEqual({ text, ids });
    }
  });
});

describe('tokenizer_source in detail', () => {
  it('lays each embedding row out by token: a chat token only the chat model has comes from it in the union', async () => {
    const out = await merge('union_linear');
    const vocabulary = vocabularyOf(out);
    const chat = tensors(join(FIXTURES, 'chat'));
    const chatVocabulary = vocabularyOf(join(FIXTURES, 'chat'));
    const merged = tensors(out).get('model.embed_tokens.weight')!;
    // Every model "has" it after the layout (the chat model's row), so the weighted mean is that row.
    const row = (values: Float32Array, id: number) => Array.from(values.subarray(id * 8, id * 8 + 8));
    const want = row(chat.get('model.embed_tokens.weight')!, chatVocabulary['<|im_start|>']);
    row(merged, vocabulary['<|im_start|>']).forEach((v, k) => expect(v).toBeCloseTo(want[k], 6));
  });

  it.each(['tokens_padded', 'model_embed_slerp'])('%s on worker threads writes the same bytes as inline', async (name) => {
    const [inline, threaded] = [await merge(name, CASES[name], 0), await merge(name, CASES[name], 2)];
    expect(readFileSync(join(threaded, 'model.safetensors')).equals(readFileSync(join(inline, 'model.safetensors')))).toBe(true);
  });

  it('works in a frankenmerge: the slices\' embeddings are laid out in the chosen vocabulary', async () => {
    const yaml = 'merge_method: passthrough\ntokenizer_source: model:chat\nslices:\n  - sources:\n      - {model: base, layer_range: [0, 1]}\n  - sources:\n      - {model: other, layer_range: [0, 1]}\n';
    const out = await merge('slices', yaml);
    const vocabulary = vocabularyOf(out);
    const base = tensors(join(FIXTURES, 'base')).get('model.embed_tokens.weight')!;
    const baseVocabulary = vocabularyOf(join(FIXTURES, 'base'));
    const merged = tensors(out).get('model.embed_tokens.weight')!;
    expect(merged.length).toBe(62 * 8);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ vocab_size: 62, num_hidden_layers: 2 });
    const row = (values: Float32Array, id: number) => Array.from(values.subarray(id * 8, id * 8 + 8));
    // The embeddings come from the first slice's source (the base); the chat tokens it lacks are zero.
    expect(row(merged, vocabulary['the'])).toEqual(row(base, baseVocabulary['the']));
    expect(row(merged, vocabulary['<|im_start|>'])).toEqual(new Array(8).fill(0));
  });

  it('without tokenizer_source copies the base tokenizer files, as mergekit does', async () => {
    const out = join(tempDir(), 'out');
    const yaml = 'merge_method: slerp\nbase_model: base\nmodels:\n  - model: base\n  - model: chat_same_rows\nparameters: {t: 0.5}\n';
    const dir = tempDir();
    cpSync(join(FIXTURES, 'base'), join(dir, 'base'), { recursive: true });
    cpSync(join(FIXTURES, 'base'), join(dir, 'chat_same_rows'), { recursive: true });
    await runMerge(planMerge(parseMergeConfig(yaml, 'legacy.yml', dir)), out, { threads: 0 });
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(FIXTURES, 'base', 'tokenizer.json'), 'utf8'));
    expect(readdirSync(out).sort()).toEqual(['README.md', 'config.json', 'mergekit_config.yml', 'model.safetensors', 'tokenizer.json']);
  });

  it('without tokenizer_source, embeddings whose vocabularies differ are an error naming the tensor', () => {
    const yaml = 'merge_method: linear\nparameters: {weight: 1}\nmodels:\n  - model: base\n  - model: other\n';
    expect(() => planMerge(parseMergeConfig(yaml, 'x.yml', FIXTURES))).toThrow(/tensor "model.embed_tokens.weight" has shape \[58,8\] .*other.* but \[60,8\]/);
  });

  it.each([
    ['tokenizer_source: [union]', /tokenizer_source: must be base, union, or model:PATH/],
    ['tokenizer_source: union\ntokenizer: {source: base}', /tokenizer_source: cannot be given with tokenizer:/],
    ['tokenizer: {source: union, extra: 1}', /tokenizer.extra: unsupported key/],
    ['tokenizer: {pad_to_multiple_of: 0}', /tokenizer.pad_to_multiple_of: must be a positive integer/],
    ['tokenizer: {tokens: {"<x>": {source: {kind: nothing}}}}', /tokenizer.tokens\["<x>"\].source.kind: must be zero or model_token/],
    ['tokenizer: {tokens: {"<x>": {source: {kind: model_token, model: base}}}}', /model_token takes one of token or token_id/],
    ['tokenizer: {tokens: {"<x>": {source: base, force: yes}}}', /tokenizer.tokens\["<x>"\].force: must be true or false/],
    ['parameters: {embed_slerp: true, t: 0.5}', /parameters.embed_slerp: applies with tokenizer_source/],
    ['tokenizer_source: union\nparameters: {embed_slerp: true}', /parameters.t: is required by embed_slerp/],
    ['tokenizer_source: union\nparameters: {embed_slerp: true, t: 0.5}', /embed_slerp: SLERPs the embeddings of exactly two models/],
  ])('%s is refused', (extra, message) => {
    const yaml = `merge_method: linear\nmodels:\n  - model: base\n  - model: chat\n${extra}\n`;
    expect(() => parseMergeConfig(yaml, 'bad.yml', FIXTURES)).toThrow(message);
  });

  it.each([
    ['"<|im_end|>": {source: other}', /tokenizer.tokens\["<\|im_end\|>"\]: .*other has no token "<\|im_end\|>"/],
    ['"<y>": {source: {kind: model_token, model: base, token: "<nope>"}}', /base has no token "<nope>"/],
    ['"<y>": {source: {kind: model_token, model: base, token_id: 999}}', /token id 999 is out of range for the 60 rows of "model.embed_tokens.weight"/],
    ['"<y>": {source: elsewhere}', /elsewhere is not among the models of tensor "model.embed_tokens.weight"/],
  ])('a tokens: entry %s that cannot be honoured is an error before anything is written', (entry, message) => {
    const yaml = `merge_method: linear\nparameters: {weight: 1}\ntokenizer:\n  tokens:\n    ${entry}\nmodels:\n  - model: base\n  - model: chat\n  - model: other\n`;
    expect(() => planMerge(parseMergeConfig(yaml, 'bad.yml', FIXTURES))).toThrow(message);
  });

  it('a model without tokenizer.json whose rows differ from the base is an error naming it', () => {
    const dir = tempDir();
    cpSync(join(FIXTURES, 'base'), join(dir, 'base'), { recursive: true });
    cpSync(join(FIXTURES, 'other'), join(dir, 'bare'), { recursive: true, filter: (src) => !src.endsWith('tokenizer.json') });
    const yaml = 'merge_method: linear\nparameters: {weight: 1}\ntokenizer_source: union\nmodels:\n  - model: base\n  - model: bare\n';
    expect(() => planMerge(parseMergeConfig(yaml, 'x.yml', dir))).toThrow(/bare: has no tokenizer.json, and its 58 embedding rows differ from the 60 of/);
  });

  it('builds the vocabulary of a Llama-3-sized tokenizer (150,000 pieces) and appends to it', () => {
    const dir = tempDir();
    const vocab = Object.fromEntries(Array.from({ length: 150000 }, (_, i) => [`p${i}`, i]));
    mkdirSync(join(dir, 'big'), { recursive: true });
    writeFileSync(join(dir, 'big', 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab, merges: [] }, added_tokens: [] }));
    const settings = { source: { kind: 'base' as const }, tokens: new Map([['<new>', { source: { kind: 'zero' as const }, force: false }]]) };
    const merged = buildVocabulary(settings, [{ directory: join(dir, 'big'), rows: 150000 }], { directory: join(dir, 'big'), rows: 150000 });
    expect(merged.size).toBe(150001);
    expect(merged.tokenizer.vocabulary.get('<new>')).toBe(150000);
  });

  it('a base without tokenizer.json is an error saying tokenizer_source needs it', () => {
    const dir = tempDir();
    cpSync(join(FIXTURES, 'base'), join(dir, 'base'), { recursive: true, filter: (src) => !src.endsWith('tokenizer.json') });
    copyFileSync(join(FIXTURES, 'chat', 'model.safetensors'), join(dir, 'base', 'unused'));
    const yaml = 'merge_method: linear\nparameters: {weight: 1}\ntokenizer_source: base\nmodels:\n  - model: base\n  - model: ' + join(FIXTURES, 'chat') + '\n';
    expect(() => planMerge(parseMergeConfig(yaml, 'x.yml', dir))).toThrow(/base: has no tokenizer.json, which tokenizer_source needs/);
  });
});
