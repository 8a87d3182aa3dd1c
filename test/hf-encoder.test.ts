/**
 * The encoder family reads Hugging Face BERT and RoBERTa sequence classifiers and computes the same
 * logits as `transformers`. The fixtures in test/fixtures/hf were written by
 * scripts/gpu/hf-reference.py with transformers 5.17.0 and torch 2.11 (random small models,
 * padded token batches, and the logits transformers computed for them).
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { maxLogitDifference } from '../bench/hf-parity';
import { loadModel } from '../src/engine/families/model';
import { useBackend } from '../src/engine/tensors/backend';

const FIXTURES = join(__dirname, 'fixtures', 'hf');

beforeAll(async () => {
  await useBackend('wasm');
});

describe.each(['bert', 'roberta'])('%s sequence classifier', (name) => {
  it('loads with its Hugging Face config and tensor names', async () => {
    const model = loadModel(join(FIXTURES, name));
    expect(model.family.name).toBe('encoder');
    expect(model.config.tasks).toEqual({ classification: 3 });
    expect(model.params.has(name === 'bert' ? 'bert.pooler.dense.weight' : 'classifier.out_proj.weight')).toBe(true);
  });

  // Measured: 3.7e-8 (BERT) and 6.0e-8 (RoBERTa) from transformers, 4e-7 of the largest logit
  // (0.093, 0.167): float32 rounding. The bound is 2e-6 of the largest logit, about five times that.
  // GELU's tanh approximation in place of erf gives 1.8e-6 and 2.0e-6 (1.9e-5 and 1.2e-5 of the
  // largest logit, tried by swapping it into encoder.ts): ten times over the bound.
  it('matches the logits transformers computed to float32 rounding, padding included', async () => {
    const reference = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as { transformers: string; logits: number[][] };
    expect(reference.transformers).toBe('5.17.0');
    const { maxAbs, shape } = await maxLogitDifference(join(FIXTURES, name), join(FIXTURES, `${name}.json`));
    expect(shape).toEqual([5, 3]);
    const scale = Math.max(...reference.logits.flat().map(Math.abs));
    expect(scale).toBeGreaterThan(0.05);
    expect(maxAbs).toBeLessThanOrEqual(2e-6 * scale);
  });
});
