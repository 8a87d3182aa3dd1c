#!/usr/bin/env python3
"""Writes small, randomly initialised Hugging Face LlamaForCausalLM, MistralForCausalLM and
Qwen2ForCausalLM models, token batches, and the logits `transformers` computes for them: the
reference that test/decoder.test.ts holds apl-merge's decoder family to (max |Δ| ≤ 1e-4, float32).

Each case exercises what the family claims to read: grouped-query attention, an explicit head_dim,
llama3 and linear RoPE scaling, attention/MLP biases (Llama), q/k/v biases and tied embeddings
(Qwen2), a sliding window shorter than the batch (Mistral), sharded and F16/BF16 checkpoints.

Runs where torch and transformers are installed (no hub access needed):
    python3 scripts/gpu/hf-decoder-reference.py OUT_DIR
Writes OUT_DIR/<case>/ (config.json, safetensors) and OUT_DIR/<case>.json ({input_ids, logits}).
Copy OUT_DIR to test/fixtures/hf-decoder to make the parity test run.
"""
import os
import sys

import torch
from hf_fixtures import write_reference
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, max_position_embeddings=64,
              rms_norm_eps=1e-5, attention_dropout=0.0)

CASES = {
    'llama': (LlamaForCausalLM, LlamaConfig(num_attention_heads=4, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                                            rope_theta=500000.0,
                                            rope_scaling=dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0,
                                                              high_freq_factor=4.0, original_max_position_embeddings=8),
                                            **COMMON), {}),
    'llama-linear-f16-sharded': (LlamaForCausalLM, LlamaConfig(num_attention_heads=4, num_key_value_heads=4, head_dim=16,
                                                               rope_scaling=dict(rope_type='linear', factor=2.0), **COMMON),
                                 dict(dtype=torch.float16, max_shard_size='40KB')),
    'mistral': (MistralForCausalLM, MistralConfig(num_attention_heads=4, num_key_value_heads=1, sliding_window=5, **COMMON), {}),
    'qwen2': (Qwen2ForCausalLM, Qwen2Config(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, **COMMON),
              dict(dtype=torch.bfloat16)),
}


def main(out):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    for name, (cls, config, save) in CASES.items():
        config._attn_implementation = 'eager'
        model = cls(config).eval()
        # Random, not default, norm and bias values, so every parameter matters.
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)
        dtype = save.get('dtype')
        if dtype is not None:
            # The logits are those of the rounded weights, which is what the checkpoint holds.
            model = model.to(dtype).to(torch.float32)
        target = os.path.join(out, name)
        (model.to(dtype) if dtype is not None else model).save_pretrained(target, safe_serialization=True,
                                                                          max_shard_size=save.get('max_shard_size', '5GB'))
        ids = torch.randint(0, config.vocab_size, (3, 12), generator=generator)
        with torch.no_grad():
            logits = model.to(torch.float32)(input_ids=ids).logits
        write_reference(out, name, ids, logits)


if __name__ == '__main__':
    main(sys.argv[1])
