/**
 * Small random Hugging Face decoder checkpoints written to disk (config.json + safetensors, one
 * file or shards, F32/F16/BF16), and a reference forward pass written independently of the
 * family: plain float64 loops over the config.json fields, straight from the architecture as
 * transformers' modeling_llama / mistral / qwen2 define it (per-head attention, repeat_kv, RoPE by
 * rotate_half, the llama3 and linear frequency scalings).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeToFloat32, encodeFromFloat32, FloatDtype } from '../../src/engine/checkpoint/dtype';
import { CheckpointWriter } from '../../src/engine/checkpoint/writer';
import { Random } from '../../src/engine/kernels/random';

export type Json = Record<string, unknown>;

/** The tensors a config implies, by the names transformers saves. */
export function decoderTensorShapes(config: Json): Array<[string, number[]]> {
  const H = config.hidden_size as number;
  const heads = config.num_attention_heads as number;
  const kvHeads = (config.num_key_value_heads as number) ?? heads;
  const headDim = (config.head_dim as number) ?? H / heads;
  const I = config.intermediate_size as number;
  const V = config.vocab_size as number;
  const qwen = config.model_type === 'qwen2';
  const attnBias = config.attention_bias === true;
  const mlpBias = config.mlp_bias === true;
  const out: Array<[string, number[]]> = [['model.embed_tokens.weight', [V, H]]];
  for (let i = 0; i < (config.num_hidden_layers as number); i++) {
    const L = `model.layers.${i}.`;
    out.push([`${L}input_layernorm.weight`, [H]]);
    for (const [p, rows] of [['q', heads * headDim], ['k', kvHeads * headDim], ['v', kvHeads * headDim]] as const) {
      out.push([`${L}self_attn.${p}_proj.weight`, [rows, H]]);
      if (qwen || attnBias) out.push([`${L}self_attn.${p}_proj.bias`, [rows]]);
    }
    out.push([`${L}self_attn.o_proj.weight`, [H, heads * headDim]]);
    if (attnBias) out.push([`${L}self_attn.o_proj.bias`, [H]]);
    out.push([`${L}post_attention_layernorm.weight`, [H]]);
    for (const [p, shape] of [['gate', [I, H]], ['up', [I, H]], ['down', [H, I]]] as const) {
      out.push([`${L}mlp.${p}_proj.weight`, [...shape]]);
      if (mlpBias) out.push([`${L}mlp.${p}_proj.bias`, [shape[0]]]);
    }
  }
  out.push(['model.norm.weight', [H]]);
  if (config.tie_word_embeddings !== true) out.push(['lm_head.weight', [V, H]]);
  return out;
}

/**
 * Writes a random decoder (norms around 1, weights ~0.2/√fan-in, so that the logits are far from
 * uniform) and returns the values as stored (rounded to the dtype).
 */
export function writeDecoder(dir: string, config: Json, options: { seed?: number; dtype?: FloatDtype; maxShardBytes?: number; values?: Map<string, Float32Array> } = {}): Map<string, Float32Array> {
  mkdirSync(dir, { recursive: true });
  const dtype = options.dtype ?? 'F32';
  const shapes = decoderTensorShapes(config);
  const stored = new Map<string, Float32Array>();
  const writer = new CheckpointWriter(dir, shapes.map(([name, shape]) => ({ name, dtype, shape })), { maxShardBytes: options.maxShardBytes, metadata: { format: 'pt' } });
  for (const [name, shape] of shapes) {
    let values = options.values?.get(name);
    if (!values) {
      const random = new Random(options.seed ?? 0, name);
      const size = shape.reduce((a, b) => a * b, 1);
      const scale = shape.length === 1 ? 0.1 : 2 / Math.sqrt(shape[1]);
      values = Float32Array.from({ length: size }, () => (name.endsWith('norm.weight') ? 1 : 0) + (random.nextFloat() * 2 - 1) * scale);
    }
    const bytes = encodeFromFloat32(values, dtype);
    stored.set(name, decodeToFloat32(bytes, dtype));
    writer.write(name, bytes);
  }
  writer.finish();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return stored;
}

function inverseFrequencies(config: Json, headDim: number): number[] {
  const theta = (config.rope_theta as number) ?? 10000;
  const base = Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  const scaling = config.rope_scaling as Json | undefined | null;
  if (!scaling) return base;
  const type = scaling.rope_type ?? scaling.type;
  if (type === 'linear') return base.map((f) => f / (scaling.factor as number));
  if (type === 'llama3') {
    const factor = scaling.factor as number;
    const low = scaling.low_freq_factor as number;
    const high = scaling.high_freq_factor as number;
    const old = scaling.original_max_position_embeddings as number;
    return base.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      const scaled = wavelen > old / low ? f / factor : f;
      const smooth = (old / wavelen - low) / (high - low);
      const medium = !(wavelen < old / high) && !(wavelen > old / low);
      return medium ? (1 - smooth) * (scaled / factor) + smooth * scaled : scaled;
    });
  }
  return base;
}

/** logits [batch][position][vocab] in float64. */
export function referenceLogits(config: Json, params: Map<string, Float32Array>, ids: number[][]): number[][][] {
  const H = config.hidden_size as number;
  const heads = config.num_attention_heads as number;
  const kvHeads = (config.num_key_value_heads as number) ?? heads;
  const hd = (config.head_dim as number) ?? H / heads;
  const V = config.vocab_size as number;
  const eps = (config.rms_norm_eps as number) ?? 1e-6;
  const window = config.model_type === 'mistral' ? ((config.sliding_window as number) ?? 0) : 0;
  const inv = inverseFrequencies(config, hd);
  const p = (name: string) => params.get(name)!;
  const opt = (name: string) => params.get(name);
  const matvec = (w: Float32Array, b: Float32Array | undefined, x: number[], rows: number) =>
    Array.from({ length: rows }, (_, r) => {
      let s = b ? b[r] : 0;
      for (let j = 0; j < x.length; j++) s += w[r * x.length + j] * x[j];
      return s;
    });
  const norm = (x: number[], w: Float32Array) => {
    const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + eps)) * w[i]);
  };
  const rope = (v: number[], pos: number) => {
    const half = hd / 2;
    return v.map((x, i) => {
      const f = inv[i % half];
      const rotated = i < half ? -v[i + half] : v[i - half];
      return x * Math.cos(pos * f) + rotated * Math.sin(pos * f);
    });
  };
  return ids.map((seq) => {
    const T = seq.length;
    let h = seq.map((t) => Array.from(p('model.embed_tokens.weight').subarray(t * H, (t + 1) * H)));
    for (let l = 0; l < (config.num_hidden_layers as number); l++) {
      const L = `model.layers.${l}.`;
      const x = h.map((row) => norm(row, p(`${L}input_layernorm.weight`)));
      const q = x.map((row) => matvec(p(`${L}self_attn.q_proj.weight`), opt(`${L}self_attn.q_proj.bias`), row, heads * hd));
      const k = x.map((row) => matvec(p(`${L}self_attn.k_proj.weight`), opt(`${L}self_attn.k_proj.bias`), row, kvHeads * hd));
      const v = x.map((row) => matvec(p(`${L}self_attn.v_proj.weight`), opt(`${L}self_attn.v_proj.bias`), row, kvHeads * hd));
      const context = Array.from({ length: T }, () => new Array<number>(heads * hd).fill(0));
      for (let head = 0; head < heads; head++) {
        const kvHead = Math.floor(head / (heads / kvHeads));
        for (let i = 0; i < T; i++) {
          const qi = rope(q[i].slice(head * hd, (head + 1) * hd), i);
          const allowed = Array.from({ length: T }, (_, j) => j <= i && (window === 0 || i - j < window));
          const scores = allowed.map((ok, j) => (ok ? rope(k[j].slice(kvHead * hd, (kvHead + 1) * hd), j).reduce((a, kv, d) => a + kv * qi[d], 0) / Math.sqrt(hd) : -Infinity));
          const top = Math.max(...scores);
          const weights = scores.map((s) => Math.exp(s - top));
          const total = weights.reduce((a, b) => a + b, 0);
          for (let j = 0; j < T; j++) for (let d = 0; d < hd; d++) context[i][head * hd + d] += (weights[j] / total) * v[j][kvHead * hd + d];
        }
      }
      h = h.map((row, i) => {
        const attn = matvec(p(`${L}self_attn.o_proj.weight`), opt(`${L}self_attn.o_proj.bias`), context[i], H);
        return row.map((val, j) => val + attn[j]);
      });
      h = h.map((row) => {
        const y = norm(row, p(`${L}post_attention_layernorm.weight`));
        const I = config.intermediate_size as number;
        const gate = matvec(p(`${L}mlp.gate_proj.weight`), opt(`${L}mlp.gate_proj.bias`), y, I);
        const up = matvec(p(`${L}mlp.up_proj.weight`), opt(`${L}mlp.up_proj.bias`), y, I);
        const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
        const down = matvec(p(`${L}mlp.down_proj.weight`), opt(`${L}mlp.down_proj.bias`), act, H);
        return row.map((val, j) => val + down[j]);
      });
    }
    const head = opt('lm_head.weight') ?? p('model.embed_tokens.weight');
    return h.map((row) => matvec(head, undefined, norm(row, p('model.norm.weight')), V));
  });
}

/** The four architectures' test configs: GQA, head_dim, RoPE scalings, biases, a sliding window, tied embeddings. */
export const DECODER_CASES: Record<string, { config: Json; dtype: FloatDtype; maxShardBytes?: number }> = {
  llama: {
    config: {
      model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 96, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 500000, attention_bias: true, mlp_bias: true,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 }, hidden_act: 'silu',
      tie_word_embeddings: false, torch_dtype: 'float32', transformers_version: '5.17.0', bos_token_id: 1, eos_token_id: 2,
    },
    dtype: 'F32',
  },
  'llama-linear-f16-sharded': {
    config: {
      model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 96, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 4, head_dim: 16, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_scaling: { type: 'linear', factor: 2 },
      torch_dtype: 'float16',
    },
    dtype: 'F16',
    maxShardBytes: 20_000,
  },
  mistral: {
    config: {
      model_type: 'mistral', architectures: ['MistralForCausalLM'], vocab_size: 96, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 64, rms_norm_eps: 1e-5, rope_theta: 10000, sliding_window: 5, torch_dtype: 'float32',
    },
    dtype: 'F32',
  },
  qwen2: {
    config: {
      model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], vocab_size: 96, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true,
      use_sliding_window: false, sliding_window: 4096, max_window_layers: 2, torch_dtype: 'bfloat16',
    },
    dtype: 'BF16',
  },
};
