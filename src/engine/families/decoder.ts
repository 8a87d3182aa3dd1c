/**
 * The decoder family: Hugging Face LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM as
 * they are saved (config.json fields and tensor names), and our own zoo's small Llama.
 *
 * embed_tokens → N × [x + attention(RMSNorm(x)); x + SwiGLU(RMSNorm(x))] → RMSNorm → lm_head,
 * attention with rotary position embeddings (rotate-half layout, `rope_theta`, `linear` and
 * `llama3` scaling), grouped-query heads, a causal mask (Mistral's sliding window where set) and
 * q/k/v biases where the architecture has them (Qwen2; Llama's `attention_bias`).
 *
 * The LM head is part of the trunk (merges merge it, as mergekit does) and scores every task: the
 * family's output is logits for every position, [examples·length, vocabulary], and a task's token
 * labels say which positions count (ScoredTargets in types.ts). Padding goes on the right: under
 * the causal mask it reaches no earlier position, so no attention mask is needed.
 */
import * as tf from '@tensorflow/tfjs';
import { splitHasTokenLabels, TaskSplit } from '../data/task-data';
import { Random } from '../kernels/random';
import { gatherRows } from './gather-rows';
import { product, productTransposed } from './products';
import { FamilyConfig, ModelFamily, ParamLookup, Stage, TensorShape } from './types';

export type DecoderArchitecture = 'llama' | 'mistral' | 'qwen2';

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface DecoderConfig extends FamilyConfig {
  family: 'decoder';
  architecture: DecoderArchitecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** Biases on q, k and v (Qwen2; Llama with attention_bias), and on o (Llama with attention_bias). */
  qkvBias: boolean;
  outputBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  /** Per layer: the sliding attention window (tokens), or 0 for full causal attention. */
  slidingWindows: number[];
  /** config.json as read, written back unchanged so that a saved model stays a Hugging Face checkpoint. */
  source: Record<string, unknown>;
}

const ARCHITECTURES: Record<DecoderArchitecture, string> = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' };

/**
 * Fields that do not change the forward pass in float32 inference: bookkeeping, generation
 * settings, training-only switches. A field in neither this list nor the ones parsed below is an
 * error: it may change the math, and a silent guess would give wrong logits.
 */
const INERT_FIELDS = new Set([
  'apl_family', 'model_type', 'architectures', 'transformers_version', '_name_or_path', 'torch_dtype', 'dtype', 'use_cache', 'bos_token_id', 'eos_token_id', 'pad_token_id',
  'initializer_range', 'attention_dropout', 'hidden_dropout', 'pretraining_tp', 'tokenizer_class', 'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript',
  'is_decoder', 'is_encoder_decoder', 'add_cross_attention', 'tie_encoder_decoder', 'chunk_size_feed_forward', 'pruned_heads', 'problem_type', 'id2label', 'label2id',
  'task_specific_params', 'finetuning_task', 'prefix', 'sep_token_id', 'decoder_start_token_id', 'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams',
  'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty', 'length_penalty', 'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences', 'output_scores', 'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id',
  'remove_invalid_values', 'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'cross_attention_hidden_size', 'tf_legacy_loss', 'use_bfloat16',
  'keys_to_ignore_at_inference', 'base_model_tp_plan', 'base_model_pp_plan', 'tp_plan',
]);

function fail(file: string, field: string, reason: string): never {
  throw new Error(`${file}: ${field}: ${reason}`);
}

function positive(json: Record<string, unknown>, field: string, file: string, fallback?: number): number {
  const value = json[field] ?? fallback;
  if (!Number.isInteger(value) || (value as number) <= 0) fail(file, field, `must be a positive integer, got ${JSON.stringify(value ?? null)}`);
  return value as number;
}

function positiveNumber(json: Record<string, unknown>, field: string, file: string, fallback: number): number {
  const value = json[field] ?? fallback;
  if (typeof value !== 'number' || !(value > 0)) fail(file, field, `must be a positive number, got ${JSON.stringify(value)}`);
  return value;
}

function flag(json: Record<string, unknown>, field: string, file: string, fallback: boolean): boolean {
  const value = json[field] ?? fallback;
  if (typeof value !== 'boolean') fail(file, field, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function parseRopeScaling(json: Record<string, unknown>, file: string): RopeScaling {
  const raw = json.rope_scaling;
  if (raw === undefined || raw === null) return { type: 'default' };
  if (typeof raw !== 'object' || Array.isArray(raw)) fail(file, 'rope_scaling', `must be an object or null, got ${JSON.stringify(raw)}`);
  const scaling = raw as Record<string, unknown>;
  const type = scaling.rope_type ?? scaling.type;
  const known = ['rope_type', 'type', 'factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'];
  const unknown = Object.keys(scaling).find((k) => !known.includes(k));
  if (unknown) fail(file, `rope_scaling.${unknown}`, 'is not a field of the linear or llama3 RoPE scaling the engine implements');
  const number = (field: string, fallback?: number): number => {
    const value = scaling[field] ?? fallback;
    if (typeof value !== 'number' || !(value > 0)) fail(file, `rope_scaling.${field}`, `must be a positive number, got ${JSON.stringify(value ?? null)}`);
    return value;
  };
  if (type === 'default') return { type: 'default' };
  if (type === 'linear') return { type: 'linear', factor: number('factor') };
  if (type === 'llama3') {
    const scalingConfig = {
      type: 'llama3' as const,
      factor: number('factor'),
      lowFreqFactor: number('low_freq_factor'),
      highFreqFactor: number('high_freq_factor'),
      originalMaxPositions: number('original_max_position_embeddings'),
    };
    if (scalingConfig.highFreqFactor <= scalingConfig.lowFreqFactor) fail(file, 'rope_scaling.high_freq_factor', `must exceed low_freq_factor (${scalingConfig.lowFreqFactor})`);
    return scalingConfig;
  }
  return fail(file, 'rope_scaling.rope_type', `${JSON.stringify(type)} is not a RoPE scaling the engine implements (default, linear, llama3)`);
}

/** A Hugging Face config.json of one of the three architectures (our LM zoo writes Llama ones). */
function parseDecoderConfig(json: Record<string, unknown>, file: string): DecoderConfig {
  const architecture = json.model_type as DecoderArchitecture;
  if (!Object.hasOwn(ARCHITECTURES, architecture)) fail(file, 'model_type', `${JSON.stringify(json.model_type)} is not llama, mistral or qwen2`);
  const parsed = new Set<string>([
    'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'max_position_embeddings',
    'rms_norm_eps', 'rope_theta', 'rope_scaling', 'hidden_act', 'attention_bias', 'mlp_bias', 'tie_word_embeddings', 'sliding_window', 'use_sliding_window',
    'max_window_layers', 'layer_types', 'partial_rotary_factor', 'apl_sequence_length',
  ]);
  const unknown = Object.keys(json).find((k) => !parsed.has(k) && !INERT_FIELDS.has(k));
  if (unknown) fail(file, unknown, `is not a ${architecture} config field the engine knows; it may change the model's math, so the model is not run rather than run wrong`);
  const hiddenAct = json.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') fail(file, 'hidden_act', `only "silu" (SwiGLU) is implemented, got ${JSON.stringify(hiddenAct)}`);
  if (json.partial_rotary_factor !== undefined && json.partial_rotary_factor !== 1) fail(file, 'partial_rotary_factor', `only 1 (rotary embedding over the whole head) is implemented, got ${JSON.stringify(json.partial_rotary_factor)}`);
  const hiddenSize = positive(json, 'hidden_size', file);
  const heads = positive(json, 'num_attention_heads', file);
  const kvHeads = positive(json, 'num_key_value_heads', file, heads);
  if (heads % kvHeads !== 0) fail(file, 'num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`);
  if (json.head_dim === undefined && hiddenSize % heads !== 0) fail(file, 'num_attention_heads', `${heads} does not divide hidden_size ${hiddenSize} (and head_dim is not given)`);
  const headDim = positive(json, 'head_dim', file, Math.floor(hiddenSize / heads));
  if (headDim % 2 !== 0) fail(file, 'head_dim', `${headDim} is odd: rotary embeddings rotate pairs of dimensions`);
  const layers = positive(json, 'num_hidden_layers', file);
  const slidingWindows = parseSlidingWindows(json, architecture, layers, file);
  const vocabSize = positive(json, 'vocab_size', file);
  return {
    family: 'decoder',
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize: positive(json, 'intermediate_size', file),
    layers,
    heads,
    kvHeads,
    headDim,
    maxPositions: positive(json, 'max_position_embeddings', file),
    rmsNormEps: positiveNumber(json, 'rms_norm_eps', file, 1e-6),
    ropeTheta: positiveNumber(json, 'rope_theta', file, 10000),
    ropeScaling: parseRopeScaling(json, file),
    qkvBias: architecture === 'qwen2' ? true : architecture === 'llama' ? flag(json, 'attention_bias', file, false) : false,
    outputBias: architecture === 'llama' ? flag(json, 'attention_bias', file, false) : false,
    mlpBias: architecture === 'llama' ? flag(json, 'mlp_bias', file, false) : false,
    // The three configs default to separate heads (PretrainedConfig's own default is tied).
    tieWordEmbeddings: flag(json, 'tie_word_embeddings', file, false),
    slidingWindows,
    tasks: {},
    languageModel: { vocabulary: vocabSize },
    source: json,
  };
}

/** Mistral: `sliding_window` for every layer. Qwen2: only with use_sliding_window, from max_window_layers on (or as layer_types says). */
function parseSlidingWindows(json: Record<string, unknown>, architecture: DecoderArchitecture, layers: number, file: string): number[] {
  const window = json.sliding_window;
  if (window !== undefined && window !== null && (!Number.isInteger(window) || (window as number) <= 0)) fail(file, 'sliding_window', `must be a positive integer or null, got ${JSON.stringify(window)}`);
  if (json.layer_types !== undefined) {
    const types = json.layer_types;
    if (!Array.isArray(types) || types.length !== layers || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      fail(file, 'layer_types', `must list "full_attention" or "sliding_attention" for each of the ${layers} layers`);
    }
    if (types.includes('sliding_attention') && !window) fail(file, 'sliding_window', 'layer_types has sliding_attention layers but no sliding_window');
    return types.map((t) => (t === 'sliding_attention' ? (window as number) : 0));
  }
  if (architecture === 'mistral') return new Array(layers).fill(window ?? 0);
  if (architecture === 'qwen2' && json.use_sliding_window === true) {
    if (!window) fail(file, 'sliding_window', 'use_sliding_window is true but no sliding_window is given');
    const from = json.max_window_layers ?? layers;
    if (!Number.isInteger(from)) fail(file, 'max_window_layers', `must be an integer, got ${JSON.stringify(from)}`);
    return Array.from({ length: layers }, (_, i) => (i >= (from as number) ? (window as number) : 0));
  }
  return new Array(layers).fill(0);
}

const LAYER = (i: number) => `model.layers.${i}.`;

function trunkShapes(config: DecoderConfig): TensorShape[] {
  const H = config.hiddenSize;
  const q = config.heads * config.headDim;
  const kv = config.kvHeads * config.headDim;
  const I = config.intermediateSize;
  const shapes: TensorShape[] = [{ name: 'model.embed_tokens.weight', shape: [config.vocabSize, H] }];
  for (let i = 0; i < config.layers; i++) {
    const L = LAYER(i);
    shapes.push({ name: `${L}input_layernorm.weight`, shape: [H] });
    for (const [part, rows] of [['q', q], ['k', kv], ['v', kv]] as const) {
      shapes.push({ name: `${L}self_attn.${part}_proj.weight`, shape: [rows, H] });
      if (config.qkvBias) shapes.push({ name: `${L}self_attn.${part}_proj.bias`, shape: [rows] });
    }
    shapes.push({ name: `${L}self_attn.o_proj.weight`, shape: [H, q] });
    if (config.outputBias) shapes.push({ name: `${L}self_attn.o_proj.bias`, shape: [H] });
    shapes.push({ name: `${L}post_attention_layernorm.weight`, shape: [H] });
    for (const [part, shape] of [['gate', [I, H]], ['up', [I, H]], ['down', [H, I]]] as const) {
      shapes.push({ name: `${L}mlp.${part}_proj.weight`, shape: [...shape] });
      if (config.mlpBias) shapes.push({ name: `${L}mlp.${part}_proj.bias`, shape: [shape[0]] });
    }
  }
  shapes.push({ name: 'model.norm.weight', shape: [H] });
  if (!config.tieWordEmbeddings) shapes.push({ name: 'lm_head.weight', shape: [config.vocabSize, H] });
  return shapes;
}

const lmHeadOf = (config: DecoderConfig) => (config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');

/** x · rsqrt(mean(x²) + ε) · weight over the last axis. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), weight);
}

/** x·Wᵀ (+ b) over the last axis, W stored [out, in]. */
function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const flat = tf.reshape(x, [-1, shape[shape.length - 1]]);
  const out = productTransposed(flat, weight);
  return tf.reshape(bias ? tf.add(out, bias) : out, [...shape.slice(0, -1), weight.shape[0]]);
}

/** The RoPE inverse frequencies, with the config's scaling (as transformers' rope init functions). */
export function inverseFrequencies(config: Pick<DecoderConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const { headDim, ropeTheta, ropeScaling } = config;
  const inv = Float64Array.from({ length: headDim / 2 }, (_, i) => 1 / ropeTheta ** ((2 * i) / headDim));
  if (ropeScaling.type === 'linear') return inv.map((f) => f / ropeScaling.factor);
  if (ropeScaling.type === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = ropeScaling;
    const lowFreqWavelength = originalMaxPositions / lowFreqFactor;
    const highFreqWavelength = originalMaxPositions / highFreqFactor;
    return inv.map((f) => {
      const wavelength = (2 * Math.PI) / f;
      if (wavelength < highFreqWavelength) return f;
      if (wavelength > lowFreqWavelength) return f / factor;
      const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  return inv;
}

/** cos and sin [length, headDim] of positions 0..length−1, each frequency twice (rotate-half layout). */
function rotaryTables(config: DecoderConfig, length: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const inv = inverseFrequencies(config);
  const half = inv.length;
  const cos = new Float32Array(length * config.headDim);
  const sin = new Float32Array(length * config.headDim);
  for (let p = 0; p < length; p++) {
    for (let i = 0; i < half; i++) {
      // Rounded to float32 first, as transformers computes the angle in float32.
      const angle = Math.fround(Math.fround(p) * Math.fround(inv[i]));
      for (const j of [i, i + half]) {
        cos[p * config.headDim + j] = Math.cos(angle);
        sin[p * config.headDim + j] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor2d(cos, [length, config.headDim]), sin: tf.tensor2d(sin, [length, config.headDim]) };
}

/** x·cos + rotate_half(x)·sin, x [..., length, headDim]. */
function rotate(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const half = x.shape[x.rank - 1]! / 2;
  const [first, second] = tf.split(x, [half, half], -1);
  return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(second), first], -1), sin));
}

/** Additive mask [length, length]: 0 where position i may attend to j (j ≤ i, and i − j < window), else −1e9. */
function causalMask(length: number, window: number): tf.Tensor2D {
  const mask = new Float32Array(length * length);
  for (let i = 0; i < length; i++) for (let j = 0; j < length; j++) if (j > i || (window > 0 && i - j >= window)) mask[i * length + j] = -1e9;
  return tf.tensor2d(mask, [length, length]);
}

function attention(config: DecoderConfig, p: (suffix: string) => tf.Tensor, has: (suffix: string) => boolean, x: tf.Tensor, window: number): tf.Tensor {
  const [n, length] = x.shape as [number, number, number];
  const { heads, kvHeads, headDim } = config;
  const group = heads / kvHeads;
  const project = (part: string, count: number) => {
    const out = linear(x, p(`self_attn.${part}_proj.weight`), has(`self_attn.${part}_proj.bias`) ? p(`self_attn.${part}_proj.bias`) : undefined);
    return tf.transpose(tf.reshape(out, [n, length, count, headDim]), [0, 2, 1, 3]);
  };
  const { cos, sin } = rotaryTables(config, length);
  const q = rotate(project('q', heads), cos, sin);
  const k = rotate(project('k', kvHeads), cos, sin);
  const v = project('v', kvHeads);
  // Grouped-query attention without copying k and v: the `group` query heads that share a key/value
  // head (query head h reads kv head ⌊h / group⌋, as transformers' repeat_kv) are stacked along the
  // position axis, so one batched product per kv head covers them.
  const grouped = tf.reshape(q, [n, kvHeads, group * length, headDim]);
  const scores = tf.reshape(tf.div(productTransposed(grouped, k), Math.sqrt(headDim)), [n, kvHeads, group, length, length]);
  const weights = tf.reshape(tf.softmax(tf.add(scores, causalMask(length, window))), [n, kvHeads, group * length, length]);
  const context = tf.reshape(product(weights, v), [n, heads, length, headDim]);
  const merged = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [n, length, heads * headDim]);
  return linear(merged, p('self_attn.o_proj.weight'), has('self_attn.o_proj.bias') ? p('self_attn.o_proj.bias') : undefined);
}

function mlp(p: (suffix: string) => tf.Tensor, has: (suffix: string) => boolean, x: tf.Tensor): tf.Tensor {
  const bias = (part: string) => (has(`mlp.${part}_proj.bias`) ? p(`mlp.${part}_proj.bias`) : undefined);
  const gate = linear(x, p('mlp.gate_proj.weight'), bias('gate'));
  const up = linear(x, p('mlp.up_proj.weight'), bias('up'));
  return linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), p('mlp.down_proj.weight'), bias('down'));
}

function decoderLayer(config: DecoderConfig, index: number, params: ParamLookup, h: tf.Tensor, names: Set<string>): tf.Tensor {
  const L = LAYER(index);
  const p = (suffix: string) => params(`${L}${suffix}`);
  const has = (suffix: string) => names.has(`${L}${suffix}`);
  const eps = config.rmsNormEps;
  const afterAttention = tf.add(h, attention(config, p, has, rmsNorm(h, p('input_layernorm.weight'), eps), config.slidingWindows[index]));
  return tf.add(afterAttention, mlp(p, has, rmsNorm(afterAttention, p('post_attention_layernorm.weight'), eps)));
}

/** Why the split's token ids cannot be fed to the model; `scored`: also why it cannot be scored (no token labels). */
function tokenProblem(config: DecoderConfig, split: TaskSplit, source: string, scored: boolean): string | undefined {
  const ids = split.inputs;
  if (!(ids instanceof Int32Array) || split.exampleShape.length !== 1) {
    return `${source}: examples of shape ${JSON.stringify(split.exampleShape)} (${ids instanceof Int32Array ? 'I32' : 'U8'}) are not token id sequences for the decoder`;
  }
  if (split.exampleShape[0] > config.maxPositions) return `${source}: sequences of ${split.exampleShape[0]} tokens exceed the model's ${config.maxPositions} positions (max_position_embeddings)`;
  if (scored && !splitHasTokenLabels(split)) return `${source}: has one class label per example; a language model is scored on token labels (an LM task: {prompt, completion} or {input_ids, labels})`;
  const bad = ids.findIndex((t) => t < 0 || t >= config.vocabSize);
  if (bad >= 0) return `${source}: example ${Math.floor(bad / split.exampleShape[0])} has token id ${ids[bad]} at position ${bad % split.exampleShape[0]}, outside the vocabulary of ${config.vocabSize}`;
  return undefined;
}

/** A small Llama-architecture config of our own, as the LM zoo builds it. */
export function zooDecoderConfig(sizes: { vocabSize: number; hiddenSize: number; intermediateSize: number; layers: number; heads: number; kvHeads: number; maxPositions: number }): DecoderConfig {
  const source: Record<string, unknown> = {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: sizes.vocabSize,
    hidden_size: sizes.hiddenSize,
    intermediate_size: sizes.intermediateSize,
    num_hidden_layers: sizes.layers,
    num_attention_heads: sizes.heads,
    num_key_value_heads: sizes.kvHeads,
    max_position_embeddings: sizes.maxPositions,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    torch_dtype: 'float32',
  };
  return parseDecoderConfig(source, 'zoo decoder config');
}

export const decoderFamily: ModelFamily<DecoderConfig> = {
  name: 'decoder',
  parseConfig: parseDecoderConfig,
  configJson: (config) => ({ ...config.source }),
  trunkShapes,
  headShapes: () => [],
  isHeadTensor: () => false,
  initTrunk(config, seed) {
    const values = new Map<string, Float32Array>();
    for (const { name, shape } of trunkShapes(config)) {
      const size = shape.reduce((a, b) => a * b, 1);
      if (name.endsWith('norm.weight')) values.set(name, new Float32Array(size).fill(1));
      else if (shape.length === 1) values.set(name, new Float32Array(size));
      else {
        // Normal(0, 0.02) as transformers' initializer_range, from the seeded uniform stream (Box–Muller).
        const random = new Random(seed, name);
        const v = new Float32Array(size);
        for (let i = 0; i < size; i++) v[i] = 0.02 * Math.sqrt(-2 * Math.log(1 - random.nextFloat())) * Math.cos(2 * Math.PI * random.nextFloat());
        values.set(name, v);
      }
    }
    return values;
  },
  initHead: () => new Map(),
  hiddenUnits(config) {
    // The MLP's units: gate_proj and up_proj make them (their product is the unit), down_proj reads them.
    return Array.from({ length: config.layers }, (_, i) => ({ producers: [`${LAYER(i)}mlp.gate_proj.weight`, `${LAYER(i)}mlp.up_proj.weight`], consumer: `${LAYER(i)}mlp.down_proj.weight` }));
  },
  stages(config): Stage[] {
    const names = new Set(trunkShapes(config).map((t) => t.name));
    const embed: Stage = {
      tensors: ['model.embed_tokens.weight'],
      apply: (params, ids) => gatherRows(params('model.embed_tokens.weight'), tf.cast(ids, 'int32')),
    };
    const layers: Stage[] = Array.from({ length: config.layers }, (_, i) => ({
      tensors: [...names].filter((n) => n.startsWith(LAYER(i))),
      apply: (params: ParamLookup, h: tf.Tensor) => decoderLayer(config, i, params, h, names),
    }));
    const norm: Stage = {
      tensors: ['model.norm.weight'],
      // Flattened to one row per position: the LM head is then a linear map of 2-D input, as
      // exact intervention's row stages expect.
      apply: (params, h) => tf.reshape(rmsNorm(h, params('model.norm.weight'), config.rmsNormEps), [-1, config.hiddenSize]),
    };
    const head = lmHeadOf(config);
    const lmHead: Stage = {
      tensors: [head],
      apply: (params, h) => productTransposed(h, params(head)),
      // Tied: the table is also the embedding stage's, so a partition of it spans both (no row shortcut).
      ...(config.tieWordEmbeddings ? {} : { linear: { weight: head, activation: (pre: tf.Tensor) => pre, activationName: 'identity' as const } }),
    };
    return [embed, ...layers, norm, lmHead];
  },
  head(_config, _task, _params, logitsPerPosition) {
    return logitsPerPosition;
  },
  rowsRead(config, split: TaskSplit, indices) {
    // With tied embeddings every row is also a row of the LM head, read by every position.
    if (config.tieWordEmbeddings) return new Map();
    const length = split.exampleShape[0];
    const tokens = new Set<number>();
    for (let i = 0; i < indices.length; i++) split.inputs.subarray(indices[i] * length, (indices[i] + 1) * length).forEach((t) => tokens.add(t));
    return new Map([['model.embed_tokens.weight', tokens]]);
  },
  inputsProblem: (config, split, source) => tokenProblem(config, split, source, true),
  inputs(config, split: TaskSplit, indices, source) {
    const problem = tokenProblem(config, split, source, false);
    if (problem) throw new Error(problem);
    const length = split.exampleShape[0];
    const out = new Int32Array(indices.length * length);
    for (let i = 0; i < indices.length; i++) out.set(split.inputs.subarray(indices[i] * length, (indices[i] + 1) * length), i * length);
    return tf.tensor2d(out, [indices.length, length], 'int32');
  },
};

export const DECODER_MODEL_TYPES = Object.keys(ARCHITECTURES);
export const decoderArchitectureClass = (architecture: DecoderArchitecture): string => ARCHITECTURES[architecture];
