#!/usr/bin/env python3
"""Writes small, randomly initialised Hugging Face BERT and RoBERTa sequence classifiers, token
batches, and the logits `transformers` computes for them: the reference that
test/hf-encoder.test.ts holds apl-merge's encoder family to (max |Δ| ≤ 1e-4).

Runs where torch and transformers are installed (no hub access needed):
    python3 scripts/gpu/hf-reference.py OUT_DIR
Writes OUT_DIR/{bert,roberta}/ (model.safetensors, config.json) and OUT_DIR/{bert,roberta}.json.
"""
import os
import sys

import torch
from hf_fixtures import write_reference
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification


def batch(generator, vocab, pad, length=12, rows=5):
    ids = torch.randint(5, vocab, (rows, length), generator=generator)
    lengths = [length, length - 3, 7, length, 4]
    for r, n in enumerate(lengths[:rows]):
        ids[r, n:] = pad
    return ids


def main(out):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    common = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  hidden_act='gelu', hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    cases = {
        'bert': (BertForSequenceClassification, BertConfig(max_position_embeddings=64, pad_token_id=0, **common)),
        'roberta': (RobertaForSequenceClassification, RobertaConfig(max_position_embeddings=66, pad_token_id=1, layer_norm_eps=1e-5, **common)),
    }
    for name, (cls, config) in cases.items():
        model = cls(config).eval()
        # Random, not default, LayerNorm and bias values, so every parameter matters.
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)
        model.save_pretrained(os.path.join(out, name), safe_serialization=True)
        ids = batch(generator, config.vocab_size, config.pad_token_id)
        mask = (ids != config.pad_token_id).long()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
        write_reference(out, name, ids, logits)


if __name__ == '__main__':
    main(sys.argv[1])
