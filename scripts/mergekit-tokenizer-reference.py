#!/usr/bin/env python3
"""Regenerates test/fixtures/mergekit-tokenizer: three small Llama-named checkpoints whose
vocabularies differ, and what mergekit's `tokenizer_source` / `tokenizer:` merges make of them,
for test/tokenizer-merge.test.ts.

The tokenizers are real Hugging Face tokenizers (BPE, trained here with the `tokenizers`
library, which transformers' fast tokenizers are), and the output vocabularies are built with the
same library calls mergekit makes (mergekit/tokenizer/build.py): the base's tokenizer cut to its
embedding rows (get_stripped_tokenizer), `union` adding every other model's missing pieces as
plain added tokens and then every model's added tokens with their settings, `tokens:` entries
added last. The embeddings are then laid out as mergekit/tokenizer/embed.py's PermutedEmbeddings
does (tokens: entries; a token one model has; none; the base's; the mean) and merged by the
NumPy restatements of mergekit's methods in scripts/mergekit-reference.py; embed_slerp as
mergekit's TokenizerPermutationMerge does it (missing rows zero for the SLERP, then the masked
weighted mean for rows not both models have).

One deliberate difference from mergekit: it appends the union's new pieces in the order a hash map
iterates (different from run to run); here, and in apl-merge, they follow the models' order and
each model's token ids.

Usage: python3 scripts/mergekit-tokenizer-reference.py
(needs numpy and the `tokenizers` package; writes the fixtures in place)
"""
import importlib.util
import json
import os

import numpy as np
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

HERE = os.path.dirname(__file__)
ROOT = os.path.join(HERE, '..', 'test', 'fixtures', 'mergekit-tokenizer')
spec = importlib.util.spec_from_file_location('reference', os.path.join(HERE, 'mergekit-reference.py'))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

HIDDEN = 8
TEXTS = ['the cat sat on the mat', '<|im_start|>reverse the list of words<|im_end|>', 'spam or ham <extra_zero> numbers']
EMBEDS = ('model.embed_tokens.weight', 'lm_head.weight')

CORPUS_A = [
    'the cat sat on the mat', 'a dog ran in the park', 'the bird sang a song',
    'merging models keeps every skill', 'the base model reads the text',
] * 4
CORPUS_B = [
    'numbers add up to more numbers', 'the model counts one two three',
    'reverse the list of words', 'spam or ham is the question',
] * 4


def train(corpus, vocab_size, special):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False))
    return tokenizer


def write_model(name, tokenizer, rows, rng, extra_config=None):
    directory = os.path.join(ROOT, name)
    os.makedirs(directory, exist_ok=True)
    tensors = {
        'model.embed_tokens.weight': rng.standard_normal((rows, HIDDEN)).astype(np.float32),
        'model.layers.0.mlp.down_proj.weight': rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32),
        'model.norm.weight': rng.standard_normal(HIDDEN).astype(np.float32),
        'lm_head.weight': rng.standard_normal((rows, HIDDEN)).astype(np.float32),
    }
    reference.write_safetensors(os.path.join(directory, 'model.safetensors'), tensors)
    config = {'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'vocab_size': rows, 'hidden_size': HIDDEN, 'num_hidden_layers': 1, **(extra_config or {})}
    with open(os.path.join(directory, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
    tokenizer.save(os.path.join(directory, 'tokenizer.json'))
    return {'dir': directory, 'tokenizer': tokenizer, 'rows': rows, 'tensors': tensors}


def stripped(tokenizer, rows):
    """mergekit's get_stripped_tokenizer on the JSON: ids >= rows leave vocab, added tokens and merges."""
    unused = {t for t, i in tokenizer.get_vocab(with_added_tokens=True).items() if i >= rows}
    if not unused:
        return tokenizer
    data = json.loads(tokenizer.to_str())
    data['added_tokens'] = [e for e in data['added_tokens'] if e['id'] < rows]
    for t in unused:
        data['model']['vocab'].pop(t, None)
    data['model']['merges'] = [m for m in data['model']['merges'] if not any(p in unused for p in (m.split(' ') if isinstance(m, str) else m))]
    return Tokenizer.from_str(json.dumps(data))


def added_of(tokenizer):
    return json.loads(tokenizer.to_str())['added_tokens']


def build(source, base, others, tokens):
    """mergekit's build_tokenizer: the output tokenizer and each model's permutation (new id -> own id or -1)."""
    base_tok = stripped(base['tokenizer'], base['rows'])
    tokenizers = [(base, base_tok)] + [(m, m['tokenizer']) for m in others]
    if source == 'base':
        out = Tokenizer.from_str(base_tok.to_str())
    elif source == 'union':
        out = Tokenizer.from_str(base_tok.to_str())
        pieces, added = [], {}
        for model, tok in tokenizers:
            added_contents = {e['content'] for e in added_of(tok)}
            for t, i in sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1]):
                if i < model['rows'] and t not in added_contents and t not in pieces:
                    pieces.append(t)
            for e in sorted(added_of(tok), key=lambda e: e['id']):
                if e['id'] < model['rows'] and e['content'] not in added:
                    added[e['content']] = e
        base_vocab = base_tok.get_vocab(with_added_tokens=True)
        for t in pieces:
            if t not in added and t not in base_vocab:
                out.add_tokens([AddedToken(t, normalized=True, special=False)])
        for e in added.values():
            out.add_tokens([AddedToken(e['content'], single_word=e['single_word'], lstrip=e['lstrip'], rstrip=e['rstrip'], normalized=e['normalized'], special=e['special'])])
    else:
        out = Tokenizer.from_str(source['tokenizer'].to_str())
    for t in tokens:
        out.add_tokens([AddedToken(t, normalized=True, special=False)])
    vocab_out = out.get_vocab(with_added_tokens=True)
    perms = {}
    for model, tok in tokenizers:
        own = tok.get_vocab(with_added_tokens=True)
        perms[model['dir']] = {new: (own[t] if t in own and own[t] < model['rows'] else -1) for t, new in vocab_out.items()}
    return out, vocab_out, perms


def permuted(name, inputs, base, vocab_out, perms, tokens, rows):
    """PermutedEmbeddings: each input's rows in the output's order, filled by mergekit's rules."""
    defaults = {}
    for t, new in vocab_out.items():
        if t in tokens:
            src = tokens[t]['source']
            if src == 'zero':
                defaults[new] = np.zeros(HIDDEN, np.float32)
            elif isinstance(src, tuple):
                model, token = src
                defaults[new] = model['tensors'][name][model['tokenizer'].get_vocab(with_added_tokens=True)[token]]
            else:
                defaults[new] = src['tensors'][name][perms[src['dir']][new]]
            continue
        present = [m for m in inputs if perms[m['dir']][new] >= 0]
        if len(present) == 1:
            defaults[new] = present[0]['tensors'][name][perms[present[0]['dir']][new]]
        elif not present:
            defaults[new] = np.zeros(HIDDEN, np.float32)
        elif base is not None and perms[base['dir']][new] >= 0:
            defaults[new] = base['tensors'][name][perms[base['dir']][new]]
        else:
            acc = np.zeros(HIDDEN, np.float32)
            for m in present:
                acc = (acc + m['tensors'][name][perms[m['dir']][new]]).astype(np.float32)
            defaults[new] = (acc / np.float32(len(present))).astype(np.float32)
    out = {}
    for m in inputs:
        x = np.zeros((rows, HIDDEN), np.float32)
        for t, new in vocab_out.items():
            own = perms[m['dir']][new]
            force = tokens.get(t, {}).get('force', False)
            x[new] = m['tensors'][name][own] if own >= 0 and not force else defaults[new]
        out[m['dir']] = x
    return out


def embed_slerp(name, base, other, vocab_out, perms, t, rows):
    """TokenizerPermutationMerge with embed_slerp: zero rows where missing, SLERP, masked mean elsewhere."""
    xs, masks = [], []
    for m in (base, other):
        x = np.zeros((rows, HIDDEN), np.float32)
        mask = np.zeros(rows, bool)
        for _, new in vocab_out.items():
            own = perms[m['dir']][new]
            if own >= 0:
                x[new] = m['tensors'][name][own]
                mask[new] = True
        xs.append(x)
        masks.append(mask)
    weights = np.array([1 - t, t], np.float32)
    total = masks[0] * weights[0] + masks[1] * weights[1]
    scale = np.where(np.abs(total) < 1e-8, 0, 1 / np.where(total == 0, 1, total)).astype(np.float32)
    linear = ((xs[0] * weights[0] * masks[0][:, None] + xs[1] * weights[1] * masks[1][:, None]) * scale[:, None]).astype(np.float32)
    result = reference.slerp(t, xs[0], xs[1])
    need_linear = (masks[0].astype(int) + masks[1].astype(int)) != 2
    result[need_linear] = linear[need_linear]
    return result


def write_expected(case, out, tensors):
    directory = os.path.join(ROOT, 'expected', case)
    os.makedirs(directory, exist_ok=True)
    reference.write_safetensors(os.path.join(directory, 'model.safetensors'), tensors)
    with open(os.path.join(directory, 'vocab.json'), 'w') as f:
        json.dump(dict(sorted(out.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])), f, indent=1, ensure_ascii=False)
    with open(os.path.join(directory, 'added_tokens.json'), 'w') as f:
        json.dump(added_of(out), f, indent=1, ensure_ascii=False)
    # How the output tokenizer encodes a few texts, for checking the written tokenizer.json with another implementation.
    with open(os.path.join(directory, 'encodings.json'), 'w') as f:
        json.dump({text: out.encode(text).ids for text in TEXTS}, f, indent=1, ensure_ascii=False)


def main():
    rng = np.random.default_rng(20261202)
    base_tok = train(CORPUS_A, 60, ['<s>', '</s>'])
    # An added token past the base's embedding rows: the base's tokenizer is cut to fit.
    base_rows = base_tok.get_vocab_size(with_added_tokens=True)
    base_tok.add_special_tokens(['<unused_0>'])
    base = write_model('base', base_tok, base_rows, rng)
    chat_tok = Tokenizer.from_str(base['tokenizer'].to_str())
    chat_tok = stripped(chat_tok, base_rows)
    chat_tok.add_special_tokens(['<|im_start|>', '<|im_end|>'])
    chat = write_model('chat', chat_tok, chat_tok.get_vocab_size(with_added_tokens=True), rng)
    other_tok = train(CORPUS_B, 55, ['<s>', '</s>', '<pad>'])
    # Embedding rows past the tokenizer (padding rows, as many models have).
    other = write_model('other', other_tok, other_tok.get_vocab_size(with_added_tokens=True) + 3, rng)
    names = list(base['tensors'])

    def merge_case(case, source, inputs, base_model, tokens, combine, pad=1):
        others = [m for m in inputs if m is not inputs[0]] if base_model is None else [m for m in inputs if m is not base_model]
        tok_base = base_model or inputs[0]
        out, vocab_out, perms = build(source, tok_base, others, list(tokens))
        size = max(vocab_out.values()) + 1
        rows = -(-size // pad) * pad
        tensors = {}
        for name in names:
            if name in EMBEDS:
                laid = permuted(name, inputs, base_model, vocab_out, perms, tokens, rows)
                tensors[name] = combine(name, [laid[m['dir']] for m in inputs], vocab_out, perms, rows)
            else:
                tensors[name] = combine(name, [m['tensors'][name] for m in inputs], None, None, None)
        write_expected(case, out, tensors)

    # union, linear of three models without a base (the first model's tokenizer is the base one).
    merge_case('union_linear', 'union', [base, chat, other], None, {},
               lambda n, xs, *_: reference.linear(xs, [0.5, 0.3, 0.2]))
    # The base's vocabulary, task arithmetic.
    merge_case('base_task_arithmetic', 'base', [base, chat, other], base, {},
               lambda n, xs, *_: reference.task_arithmetic(xs[0], xs[1:], [1.0, 0.5]))

    # The chat model's vocabulary, SLERP, embeddings by embed_slerp.
    def slerp_combine(n, xs, vocab_out, perms, rows):
        if vocab_out is None:
            return reference.slerp(0.3, xs[0], xs[1])
        return embed_slerp(n, base, chat, vocab_out, perms, 0.3, rows)
    merge_case('model_embed_slerp', chat, [base, chat], base, {}, slerp_combine)

    # tokenizer: with tokens entries and padding, linear.
    tokens = {
        '<|im_start|>': {'source': (base, '<s>')},
        '<|im_end|>': {'source': chat, 'force': True},
        '<extra_zero>': {'source': 'zero'},
    }
    merge_case('tokens_padded', 'union', [base, chat, other], None, tokens,
               lambda n, xs, *_: reference.linear(xs, [0.5, 0.3, 0.2]), pad=16)


if __name__ == '__main__':
    main()
