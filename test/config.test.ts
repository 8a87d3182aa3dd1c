import { join } from 'node:path';
import { layerPositions, parseMergeConfig, resolveParameters } from '../src/engine/merge/config';
import { ConfigError } from '../src/engine/errors';

const dir = '/models';
const parse = (text: string) => parseMergeConfig(text, 'config.yml', dir);

function configError(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const ties = `
merge_method: ties
base_model: base
models:
  - model: a
    parameters:
      weight: 0.7
      density: [{filter: mlp, value: 0.3}, {value: 0.5}]
  - model: /abs/b
parameters:
  weight: 1.0
  density: 0.9
  normalize: false
dtype: bfloat16
`;

describe('merge config parsing', () => {
  it('reads models, base, method, dtype, and resolves paths against the config directory', () => {
    const config = parse(ties);
    expect(config.method.name).toBe('ties');
    expect(config.baseModel).toBe(join(dir, 'base'));
    expect(config.models.map((m) => m.model)).toEqual([join(dir, 'a'), '/abs/b']);
    expect(config.models.map((m) => m.given)).toEqual(['a', '/abs/b']);
    expect(config.dtype).toBe('BF16');
    expect(config.seed).toBe(0);
    expect(config.seedGiven).toBe(false);
  });

  it("applies mergekit's precedence: the model's own value, then the global one, then the method default", () => {
    const config = parse(ties);
    const mlp = resolveParameters(config, 'layers.0.mlp.weight', 0);
    expect(mlp.perModel[0]).toEqual({ weight: 0.7, density: 0.3 });
    expect(mlp.perModel[1]).toEqual({ weight: 1.0, density: 0.9 });
    expect(mlp.global).toEqual({ normalize: false, lambda: 1, int8_mask: false, consensus_method: 'sum' });
    const attention = resolveParameters(config, 'layers.0.attn.weight', 0);
    expect(attention.perModel[0].density).toBe(0.5);
  });

  it('falls through to the global value when no filter matches', () => {
    const config = parse(`merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      density: [{filter: mlp, value: 0.3}]\nparameters: { weight: 1, density: 0.8 }\n`);
    expect(resolveParameters(config, 'embed', 0).perModel[0].density).toBe(0.8);
    expect(resolveParameters(config, 'x.mlp.y', 0).perModel[0].density).toBe(0.3);
  });

  it('interpolates gradients across the layers', () => {
    const config = parse(`merge_method: task_arithmetic\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      weight: [0, 1, 0]\n`);
    const names = ['embed.weight', 'layers.0.w', 'layers.1.w', 'layers.2.w', 'layers.3.w', 'layers.4.w', 'head.weight'];
    const position = layerPositions(names);
    const weights = names.map((n) => resolveParameters(config, n, position(n)).perModel[0].weight);
    expect(weights).toEqual([0, 0, 0.5, 1, 0.5, 0, 0]);
  });

  it('records an explicit seed', () => {
    const config = parse(`merge_method: dare_ties\nbase_model: b\nmodels: [{model: a, parameters: {weight: 1, density: 0.5}}]\nseed: 1234\n`);
    expect(config.seed).toBe(1234);
    expect(config.seedGiven).toBe(true);
  });

  it('drops the base from models when it is listed there (a zero task vector)', () => {
    const config = parse(`merge_method: ties\nbase_model: b\nmodels:\n  - model: b\n  - model: a\nparameters: {weight: 1}\n`);
    expect(config.models.map((m) => m.given)).toEqual(['a']);
  });
});

describe('merge config errors name the field', () => {
  it.each([
    ['an unsupported top-level key', 'merge_method: ties\nbase_model: b\nmodels: [{model: a}]\nchat_template: chatml\n', 'chat_template', /unsupported key/],
    ['an empty slices list', 'merge_method: linear\nslices: []\n', 'slices', /must be a non-empty list/],
    ['an unknown method', 'merge_method: frankenmerge\nmodels: [{model: a}]\n', 'merge_method', /unknown merge method "frankenmerge"/],
    ['a missing base for ties', 'merge_method: ties\nmodels: [{model: a}]\n', 'base_model', /is required by merge_method ties/],
    ['no models', 'merge_method: linear\nmodels: []\n', 'models', /non-empty list/],
    ['an unknown model key', 'merge_method: linear\nmodels: [{model: a, weight: 1}]\n', 'models[0].weight', /unsupported key/],
    ['an unknown parameter', 'merge_method: linear\nmodels: [{model: a, parameters: {wieght: 1}}]\n', 'models[0].parameters.wieght', /unknown parameter/],
    ['a density above 1', 'merge_method: ties\nbase_model: b\nmodels: [{model: a, parameters: {weight: 1, density: 1.5}}]\n', 'models[0].parameters.density', /above the maximum 1/],
    ['a string weight', 'merge_method: linear\nmodels: [{model: a, parameters: {weight: "heavy"}}]\n', 'models[0].parameters.weight', /finite number/],
    ['a .nan weight, said as such', 'merge_method: linear\nmodels: [{model: a, parameters: {weight: .nan}}]\n', 'models[0].parameters.weight', /must be a finite number, got \.nan \(not a number\)$/],
    ['a 1e400 weight, said as such', 'merge_method: linear\nmodels: [{model: a, parameters: {weight: 1e400}}]\n', 'models[0].parameters.weight', /got \.inf \(or a number beyond float64, such as 1e400\)$/],
    ['a global parameter set per model', 'merge_method: ties\nbase_model: b\nmodels: [{model: a, parameters: {normalize: true}}]\n', 'models[0].parameters.normalize', /global parameter/],
    ['a bad consensus', 'merge_method: ties\nbase_model: b\nmodels: [{model: a}]\nparameters: {consensus_method: vote}\n', 'parameters.consensus_method', /one of sum, count/],
    ['a bad dtype', 'merge_method: linear\nmodels: [{model: a}]\ndtype: int4\n', 'dtype', /not one of float32, float16, bfloat16/],
    ['a negative seed', 'merge_method: linear\nmodels: [{model: a}]\nseed: -1\n', 'seed', /non-negative integer/],
    ['two adapters on one model', 'merge_method: linear\nmodels: [{model: a+lora+more}]\n', 'models[0].model', /one adapter at most/],
    ['a duplicate key', 'merge_method: linear\nmerge_method: ties\n', '(yaml)', /unique/i],
    ['a condition without value', 'merge_method: linear\nmodels: [{model: a, parameters: {weight: [{filter: x}]}}]\n', 'models[0].parameters.weight[0]', /has no value/],
    ['slerp of three models', 'merge_method: slerp\nbase_model: b\nmodels: [{model: b}, {model: a}, {model: c}]\nparameters: {t: 0.5}\n', 'models', /^slerp merges exactly two models, the base_model and one other; got 2 besides the base$/],
    ['slerp without a base', 'merge_method: slerp\nmodels: [{model: a}, {model: c}]\nparameters: {t: 0.5}\n', 'base_model', /is required by merge_method slerp/],
    ['model_stock of one fine-tune', 'merge_method: model_stock\nbase_model: b\nmodels: [{model: b}, {model: a}]\n', 'models', /^model_stock needs a base_model and at least two other models; got 1 besides the base$/],
    ['nearswap of three models', 'merge_method: nearswap\nbase_model: b\nmodels: [{model: a}, {model: c}]\nparameters: {t: 0.1}\n', 'models', /nearswap merges exactly two models/],
    ['passthrough of two models', 'merge_method: passthrough\nmodels: [{model: a}, {model: c}]\n', 'models', /^passthrough takes exactly one model; got 2$/],
    ['nuslerp of three models', 'merge_method: nuslerp\nmodels: [{model: a, parameters: {weight: 1}}, {model: c, parameters: {weight: 1}}, {model: d, parameters: {weight: 1}}]\n', 'models', /^nuslerp merges exactly two models \(and an optional base_model, not one of them\); got 3$/],
    ['nuslerp of the base and one model', 'merge_method: nuslerp\nbase_model: b\nmodels: [{model: b, parameters: {weight: 1}}, {model: a, parameters: {weight: 1}}]\n', 'models', /got 1$/],
    ['sce without a base', 'merge_method: sce\nmodels: [{model: a}, {model: c}]\n', 'base_model', /is required by merge_method sce/],
    ['an sce select_topk above 1', 'merge_method: sce\nbase_model: b\nmodels: [{model: a}]\nparameters: {select_topk: 2}\n', 'parameters.select_topk', /above the maximum 1/],
    ['a per-model slerp t', 'merge_method: slerp\nbase_model: b\nmodels: [{model: a, parameters: {t: 0.5}}]\n', 'models[0].parameters.t', /global parameter/],
  ])('rejects %s', (_title, text, field, reason) => {
    const error = configError(text);
    expect(error.field).toBe(field);
    expect(error.reason).toMatch(reason);
    expect(error.message).toContain('config.yml');
  });

  it('names the parameter and tensor when a method\'s global parameters cannot work (nearswap t ≤ 0, slerp without t)', () => {
    const nearswap = parse('merge_method: nearswap\nbase_model: b\nmodels: [{model: a}]\nparameters: {t: [{filter: bias, value: 0}, {value: 0.1}]}\n');
    expect(resolveParameters(nearswap, 'layers.0.w', 0).global.t).toBe(0.1);
    expect(() => resolveParameters(nearswap, 'layers.0.bias', 0)).toThrow(/parameters: t must be above 0, got 0 \(tensor "layers.0.bias"\)/);
    const slerp = parse('merge_method: slerp\nbase_model: b\nmodels: [{model: a}]\n');
    expect(() => resolveParameters(slerp, 'layers.0.w', 0)).toThrow(/parameters\.t: is required by slerp/);
  });

  it('names the model and tensor when a required parameter is missing', () => {
    const config = parse('merge_method: linear\nmodels: [{model: a, parameters: {weight: 1}}, {model: c}]\n');
    expect(() => resolveParameters(config, 'layers.0.w', 0)).toThrow(/models\[1\]\.parameters\.weight: is required by linear \(for tensor "layers.0.w" of \/models\/c\)/);
  });
});
