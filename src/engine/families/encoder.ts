/**
 * The transformer encoder family: token + position (+ token type) embeddings, N blocks of
 * self-attention and a GELU MLP, a pooled first-token output, and one classification head per task.
 *
 * Three flavours share the code and the Hugging Face BERT tensor names
 * (`embeddings.word_embeddings.weight`, `encoder.layer.{i}.attention.self.query.weight`, …):
 *  - `bert`: Hugging Face BertForSequenceClassification (post-LN; tanh pooler; `classifier`),
 *    names under `bert.`;
 *  - `roberta`: RobertaForSequenceClassification (post-LN; positions offset past the padding id;
 *    `classifier.dense` + `classifier.out_proj` on the first token), names under `roberta.`;
 *  - `apl`: our own pre-LN encoder (LayerNorm before attention and MLP, a final LayerNorm), heads
 *    `heads.<task>` on the first token; in a pre-LN block `attention.output.LayerNorm` normalises
 *    the block's input and `output.LayerNorm` the MLP's input.
 */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';
import { Random } from '../kernels/random';
import { heUniform, parseTasks } from './mlp';
import { gatherRows } from './gather-rows';
import { product, productTransposed } from './products';
import { FamilyConfig, ModelFamily, ParamLookup, Stage, StageContext, TensorShape } from './types';

export interface EncoderConfig extends FamilyConfig {
  family: 'encoder';
  flavor: 'bert' | 'roberta' | 'apl';
  vocabSize: number;
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  /** Length of every example (token ids, padded with padTokenId). */
  sequenceLength: number;
}

const prefixOf = (config: EncoderConfig) => (config.flavor === 'bert' ? 'bert.' : config.flavor === 'roberta' ? 'roberta.' : '');

function fail(file: string, field: string, reason: string): never {
  throw new Error(`${file}: ${field}: ${reason}`);
}

function integer(json: Record<string, unknown>, field: string, file: string, fallback?: number): number {
  const value = json[field] ?? fallback;
  if (!Number.isInteger(value) || (value as number) < 0) fail(file, field, `must be a non-negative integer, got ${JSON.stringify(value)}`);
  return value as number;
}

/** Reads our own config.json (apl_family: encoder) or a Hugging Face BERT/RoBERTa one. */
function parseEncoderConfig(json: Record<string, unknown>, file: string): EncoderConfig {
  const huggingFace = json.apl_family === undefined;
  const flavor = huggingFace ? (json.model_type as string) : ((json.flavor as string) ?? 'apl');
  if (!['bert', 'roberta', 'apl'].includes(flavor)) fail(file, huggingFace ? 'model_type' : 'flavor', `"${flavor}" is not bert, roberta or apl`);
  if (huggingFace && json.hidden_act !== undefined && json.hidden_act !== 'gelu') fail(file, 'hidden_act', `only "gelu" is supported, got ${JSON.stringify(json.hidden_act)}`);
  let tasks: Record<string, number>;
  if (huggingFace) {
    const labels = json.id2label ? Object.keys(json.id2label as object).length : integer(json, 'num_labels', file, 2);
    tasks = { classification: labels };
  } else tasks = parseTasks(json, file);
  const config: EncoderConfig = {
    family: 'encoder',
    flavor: flavor as EncoderConfig['flavor'],
    vocabSize: integer(json, 'vocab_size', file),
    hiddenSize: integer(json, 'hidden_size', file),
    layers: integer(json, 'num_hidden_layers', file),
    heads: integer(json, 'num_attention_heads', file),
    intermediateSize: integer(json, 'intermediate_size', file),
    maxPositions: integer(json, 'max_position_embeddings', file),
    typeVocabSize: integer(json, 'type_vocab_size', file, 2),
    layerNormEps: typeof json.layer_norm_eps === 'number' ? json.layer_norm_eps : 1e-12,
    padTokenId: integer(json, 'pad_token_id', file, 0),
    sequenceLength: integer(json, 'apl_sequence_length', file, 0),
    tasks,
  };
  if (config.hiddenSize % config.heads !== 0) fail(file, 'num_attention_heads', `${config.heads} does not divide hidden_size ${config.hiddenSize}`);
  return config;
}

export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), gamma), beta);
}

/** x·Wᵀ + b over the last axis, W stored [out, in] as nn.Linear. */
export function dense(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const flat = tf.reshape(x, [-1, shape[shape.length - 1]]) as tf.Tensor2D;
  const out = tf.add(productTransposed(flat, weight), bias);
  return tf.reshape(out, [...shape.slice(0, -1), weight.shape[0]]);
}

/** GELU with the exact error function, as Hugging Face's "gelu". */
function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
}

function attention(config: EncoderConfig, p: (suffix: string) => tf.Tensor, h: tf.Tensor, maskBias: tf.Tensor): tf.Tensor {
  const [n, length, hidden] = h.shape as [number, number, number];
  const headSize = hidden / config.heads;
  const split = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [n, length, config.heads, headSize]), [0, 2, 1, 3]);
  const q = split(dense(h, p('attention.self.query.weight'), p('attention.self.query.bias')));
  const k = split(dense(h, p('attention.self.key.weight'), p('attention.self.key.bias')));
  const v = split(dense(h, p('attention.self.value.weight'), p('attention.self.value.bias')));
  const scores = tf.add(tf.div(productTransposed(q, k), Math.sqrt(headSize)), maskBias);
  const context = tf.reshape(tf.transpose(product(tf.softmax(scores), v), [0, 2, 1, 3]), [n, length, hidden]);
  return dense(context, p('attention.output.dense.weight'), p('attention.output.dense.bias'));
}

function block(config: EncoderConfig, p: (suffix: string) => tf.Tensor, h: tf.Tensor, maskBias: tf.Tensor): tf.Tensor {
  const eps = config.layerNormEps;
  const norm1 = (x: tf.Tensor) => layerNorm(x, p('attention.output.LayerNorm.weight'), p('attention.output.LayerNorm.bias'), eps);
  const norm2 = (x: tf.Tensor) => layerNorm(x, p('output.LayerNorm.weight'), p('output.LayerNorm.bias'), eps);
  const mlp = (x: tf.Tensor) => dense(gelu(dense(x, p('intermediate.dense.weight'), p('intermediate.dense.bias'))), p('output.dense.weight'), p('output.dense.bias'));
  if (config.flavor === 'apl') {
    const afterAttention = tf.add(h, attention(config, p, norm1(h), maskBias));
    return tf.add(afterAttention, mlp(norm2(afterAttention)));
  }
  const afterAttention = norm1(tf.add(h, attention(config, p, h, maskBias)));
  return norm2(tf.add(afterAttention, mlp(afterAttention)));
}

function trunkShapes(config: EncoderConfig): TensorShape[] {
  const P = prefixOf(config);
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  const shapes: TensorShape[] = [
    { name: `${P}embeddings.word_embeddings.weight`, shape: [config.vocabSize, H] },
    { name: `${P}embeddings.position_embeddings.weight`, shape: [config.maxPositions, H] },
    { name: `${P}embeddings.token_type_embeddings.weight`, shape: [config.typeVocabSize, H] },
    { name: `${P}embeddings.LayerNorm.weight`, shape: [H] },
    { name: `${P}embeddings.LayerNorm.bias`, shape: [H] },
  ];
  for (let i = 0; i < config.layers; i++) {
    const L = `${P}encoder.layer.${i}.`;
    for (const part of ['query', 'key', 'value']) shapes.push({ name: `${L}attention.self.${part}.weight`, shape: [H, H] }, { name: `${L}attention.self.${part}.bias`, shape: [H] });
    shapes.push(
      { name: `${L}attention.output.dense.weight`, shape: [H, H] },
      { name: `${L}attention.output.dense.bias`, shape: [H] },
      { name: `${L}attention.output.LayerNorm.weight`, shape: [H] },
      { name: `${L}attention.output.LayerNorm.bias`, shape: [H] },
      { name: `${L}intermediate.dense.weight`, shape: [I, H] },
      { name: `${L}intermediate.dense.bias`, shape: [I] },
      { name: `${L}output.dense.weight`, shape: [H, I] },
      { name: `${L}output.dense.bias`, shape: [H] },
      { name: `${L}output.LayerNorm.weight`, shape: [H] },
      { name: `${L}output.LayerNorm.bias`, shape: [H] },
    );
  }
  if (config.flavor === 'bert') shapes.push({ name: 'bert.pooler.dense.weight', shape: [H, H] }, { name: 'bert.pooler.dense.bias', shape: [H] });
  if (config.flavor === 'apl') shapes.push({ name: 'final_layer_norm.weight', shape: [H] }, { name: 'final_layer_norm.bias', shape: [H] });
  return shapes;
}

/** The shape, type and length checks of the encoder's inputs (token ids are checked where they are read). */
function sequenceProblem(config: EncoderConfig, split: TaskSplit, source: string): string | undefined {
  const ids = split.inputs;
  if (!(ids instanceof Int32Array) || split.exampleShape.length !== 1) {
    return `${source}: examples of shape ${JSON.stringify(split.exampleShape)} (${ids instanceof Int32Array ? 'I32' : 'U8'}) are not token id sequences for the encoder`;
  }
  const length = split.exampleShape[0];
  const maxLength = config.flavor === 'roberta' ? config.maxPositions - config.padTokenId - 1 : config.maxPositions;
  if (length > maxLength) return `${source}: sequences of ${length} tokens exceed the encoder's ${maxLength} positions`;
  return undefined;
}

export const encoderFamily: ModelFamily<EncoderConfig> = {
  name: 'encoder',
  parseConfig: parseEncoderConfig,
  configJson(config) {
    return {
      model_type: config.flavor === 'apl' ? 'apl-encoder' : config.flavor,
      architectures: [config.flavor === 'apl' ? 'AplEncoderForMultiTaskClassification' : config.flavor === 'bert' ? 'BertForSequenceClassification' : 'RobertaForSequenceClassification'],
      ...(config.flavor === 'apl' ? { apl_family: 'encoder', flavor: 'apl', tasks: config.tasks } : { num_labels: config.tasks.classification }),
      vocab_size: config.vocabSize,
      hidden_size: config.hiddenSize,
      num_hidden_layers: config.layers,
      num_attention_heads: config.heads,
      intermediate_size: config.intermediateSize,
      max_position_embeddings: config.maxPositions,
      type_vocab_size: config.typeVocabSize,
      layer_norm_eps: config.layerNormEps,
      pad_token_id: config.padTokenId,
      hidden_act: 'gelu',
      apl_sequence_length: config.sequenceLength,
    };
  },
  trunkShapes,
  headShapes(config, task) {
    const H = config.hiddenSize;
    const classes = config.tasks[task];
    if (config.flavor === 'bert') return [{ name: 'classifier.weight', shape: [classes, H] }, { name: 'classifier.bias', shape: [classes] }];
    if (config.flavor === 'roberta') {
      return [
        { name: 'classifier.dense.weight', shape: [H, H] },
        { name: 'classifier.dense.bias', shape: [H] },
        { name: 'classifier.out_proj.weight', shape: [classes, H] },
        { name: 'classifier.out_proj.bias', shape: [classes] },
      ];
    }
    return [{ name: `heads.${task}.weight`, shape: [classes, H] }, { name: `heads.${task}.bias`, shape: [classes] }];
  },
  isHeadTensor(name) {
    return name.startsWith('heads.') || name.startsWith('classifier.');
  },
  initTrunk(config, seed) {
    const values = new Map<string, Float32Array>();
    for (const { name, shape } of trunkShapes(config)) {
      const size = shape.reduce((a, b) => a * b, 1);
      if (name.endsWith('LayerNorm.weight') || name.endsWith('layer_norm.weight')) values.set(name, new Float32Array(size).fill(1));
      else if (shape.length === 1) values.set(name, new Float32Array(size));
      else if (name.includes('embeddings')) values.set(name, heUniform(new Float32Array(size), 1, new Random(seed, name)).map((v) => v * 0.02 * Math.sqrt(1 / 6) * Math.sqrt(3)));
      else values.set(name, heUniform(new Float32Array(size), shape[1], new Random(seed, name)).map((v) => v / Math.SQRT2));
    }
    return values;
  },
  initHead(config, task, seed) {
    const values = new Map<string, Float32Array>();
    for (const { name, shape } of this.headShapes(config, task)) {
      const size = shape.reduce((a, b) => a * b, 1);
      values.set(name, shape.length === 1 ? new Float32Array(size) : heUniform(new Float32Array(size), shape[1], new Random(seed, name)).map((v) => v * 0.5));
    }
    return values;
  },
  context(config, input) {
    // Additive attention bias: 0 where a token is real, a large negative number at padding.
    return tf.tidy(() => {
      const real = tf.cast(tf.notEqual(input, config.padTokenId), 'float32');
      return { real, maskBias: tf.reshape(tf.mul(tf.sub(1, real), -1e9), [input.shape[0], 1, 1, input.shape[1] as number]) };
    });
  },
  hiddenUnits(config) {
    // The feed-forward block's units: intermediate.dense makes them, output.dense reads them.
    const L = (i: number) => `${prefixOf(config)}encoder.layer.${i}.`;
    return Array.from({ length: config.layers }, (_, i) => ({ producers: [`${L(i)}intermediate.dense.weight`], consumer: `${L(i)}output.dense.weight` }));
  },
  stages(config): Stage[] {
    const P = prefixOf(config);
    const embeddings: Stage = {
      tensors: trunkShapes(config).filter((t) => t.name.startsWith(`${P}embeddings.`)).map((t) => t.name),
      apply(params, ids, context: StageContext) {
        const [n, length] = ids.shape as [number, number];
        let positions: tf.Tensor;
        if (config.flavor === 'roberta') {
          // RoBERTa numbers real tokens from padding_idx + 1; padding keeps padding_idx.
          const real = context.real;
          positions = tf.cast(tf.add(tf.mul(tf.cumsum(real, 1), real), config.padTokenId), 'int32');
        } else positions = tf.tile(tf.expandDims(tf.range(0, length, 1, 'int32'), 0), [n, 1]);
        const words = gatherRows(params(`${P}embeddings.word_embeddings.weight`), tf.cast(ids, 'int32'));
        const place = gatherRows(params(`${P}embeddings.position_embeddings.weight`), positions);
        const type = gatherRows(params(`${P}embeddings.token_type_embeddings.weight`), tf.zeros([n, length], 'int32'));
        return layerNorm(tf.add(tf.add(words, place), type), params(`${P}embeddings.LayerNorm.weight`), params(`${P}embeddings.LayerNorm.bias`), config.layerNormEps);
      },
    };
    const blocks: Stage[] = Array.from({ length: config.layers }, (_, i) => {
      const L = `${P}encoder.layer.${i}.`;
      return {
        tensors: trunkShapes(config).filter((t) => t.name.startsWith(L)).map((t) => t.name),
        apply: (params: ParamLookup, h: tf.Tensor, context: StageContext) => block(config, (suffix) => params(`${L}${suffix}`), h, context.maskBias),
      };
    });
    const pool: Stage = {
      tensors: config.flavor === 'bert' ? ['bert.pooler.dense.weight', 'bert.pooler.dense.bias'] : config.flavor === 'apl' ? ['final_layer_norm.weight', 'final_layer_norm.bias'] : [],
      apply(params, h) {
        const first = tf.squeeze(tf.slice(h, [0, 0, 0], [-1, 1, -1]), [1]);
        if (config.flavor === 'bert') return tf.tanh(dense(first, params('bert.pooler.dense.weight'), params('bert.pooler.dense.bias')));
        if (config.flavor === 'apl') return layerNorm(first, params('final_layer_norm.weight'), params('final_layer_norm.bias'), config.layerNormEps);
        return first;
      },
    };
    return [embeddings, ...blocks, pool];
  },
  head(config, task, params, pooled) {
    if (!(task in config.tasks)) throw new Error(`the model has no head for task "${task}" (heads: ${Object.keys(config.tasks).join(', ')})`);
    if (config.flavor === 'bert') return dense(pooled, params('classifier.weight'), params('classifier.bias'));
    if (config.flavor === 'roberta') {
      const hidden = tf.tanh(dense(pooled, params('classifier.dense.weight'), params('classifier.dense.bias')));
      return dense(hidden, params('classifier.out_proj.weight'), params('classifier.out_proj.bias'));
    }
    return dense(pooled, params(`heads.${task}.weight`), params(`heads.${task}.bias`));
  },
  rowsRead(config, split: TaskSplit, indices) {
    const P = prefixOf(config);
    const length = split.exampleShape[0];
    const words = new Set<number>();
    const positions = new Set<number>();
    for (let i = 0; i < indices.length; i++) {
      const row = split.inputs.subarray(indices[i] * length, (indices[i] + 1) * length);
      let real = 0;
      for (let j = 0; j < row.length; j++) {
        words.add(row[j]);
        // The embedding stage's positions: 0..length−1, or RoBERTa's count of real tokens past the padding id.
        if (config.flavor !== 'roberta') positions.add(j);
        else if (row[j] === config.padTokenId) positions.add(config.padTokenId);
        else positions.add(config.padTokenId + ++real);
      }
    }
    return new Map([
      [`${P}embeddings.word_embeddings.weight`, words],
      [`${P}embeddings.position_embeddings.weight`, positions],
      [`${P}embeddings.token_type_embeddings.weight`, new Set([0])],
    ]);
  },
  inputsProblem(config, split: TaskSplit, source) {
    const problem = sequenceProblem(config, split, source);
    if (problem) return problem;
    const ids = split.inputs;
    const bad = ids.findIndex((t) => t < 0 || t >= config.vocabSize);
    if (bad >= 0) return `${source}: example ${Math.floor(bad / split.exampleShape[0])} has token id ${ids[bad]} outside the vocabulary of ${config.vocabSize}`;
    return undefined;
  },
  inputs(config, split: TaskSplit, indices, source) {
    const problem = sequenceProblem(config, split, source);
    if (problem) throw new Error(problem);
    const ids = split.inputs;
    const length = split.exampleShape[0];
    const out = new Int32Array(indices.length * length);
    for (let i = 0; i < indices.length; i++) {
      const row = ids.subarray(indices[i] * length, (indices[i] + 1) * length);
      const bad = row.findIndex((t) => t < 0 || t >= config.vocabSize);
      if (bad >= 0) throw new Error(`${source}: example ${indices[i]} has token id ${row[bad]} outside the vocabulary of ${config.vocabSize}`);
      out.set(row, i * length);
    }
    return tf.tensor2d(out, [indices.length, length], 'int32');
  },
};
