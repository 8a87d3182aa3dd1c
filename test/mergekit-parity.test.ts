/**
 * Agreement with mergekit on the same inputs. The expected outputs in test/fixtures/mergekit were
 * computed by scripts/mergekit-reference.py, which restates mergekit's linear, task_arithmetic,
 * ties, slerp, nuslerp, multislerp, karcher, nearswap, model_stock, sce, arcee_fusion and passthrough
 * arithmetic in NumPy float32 (mergekit itself cannot be installed offline). Agreement
 * is to float32 rounding: we accumulate in float64, mergekit in float32, so results may differ by
 * a few units in the last place of the operands (near-zero results, after cancellation, have
 * tiny ulps of their own, so the yardstick is the ulp of the tensor's largest input). Any wrong
 * trim or sign decision would differ by orders of magnitude more.
 */
import { join } from 'node:path';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { readAllTensors as tensors, removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

const FIXTURES = join(__dirname, 'fixtures', 'mergekit');

const CONFIGS: Record<string, string> = {
  linear: `merge_method: linear
models:
  - model: base
    parameters: {weight: 0.1}
  - model: ft1
    parameters: {weight: 0.2}
  - model: ft2
    parameters: {weight: 0.5}
  - model: ft3
    parameters: {weight: 0.3}
`,
  linear_unnormalized: `merge_method: linear
models:
  - model: ft1
    parameters: {weight: 0.5}
  - model: ft2
    parameters: {weight: 0.25}
  - model: ft3
    parameters: {weight: 0.25}
parameters: {normalize: false}
`,
  task_arithmetic: `merge_method: task_arithmetic
base_model: base
models:
  - model: ft1
    parameters: {weight: 1.0}
  - model: ft2
    parameters: {weight: 0.5}
  - model: ft3
    parameters: {weight: -0.3}
`,
  ties: `merge_method: ties
base_model: base
models:
  - model: ft1
    parameters: {weight: 1.0, density: 0.5}
  - model: ft2
    parameters: {weight: 0.7, density: 0.3}
  - model: ft3
    parameters: {weight: 0.4, density: 0.8}
dtype: float32
`,
  slerp: `merge_method: slerp
base_model: base
models:
  - model: base
  - model: ft1
parameters:
  t:
    - filter: bias
      value: 0.8
    - value: 0.3
`,
  slerp_colinear: `merge_method: slerp
base_model: base
models:
  - model: scaled
parameters: {t: 0.25}
`,
  nearswap: `merge_method: nearswap
base_model: base
models:
  - model: base
  - model: ft2
parameters: {t: 0.004}
`,
  model_stock: `merge_method: model_stock
base_model: base
models:
  - model: ft1
  - model: ft2
  - model: ft3
`,
  model_stock_filter_wise: `merge_method: model_stock
base_model: base
models:
  - model: base
  - model: ft1
  - model: ft2
  - model: ft3
parameters: {filter_wise: true}
`,
  nuslerp: `merge_method: nuslerp
models:
  - model: ft1
    parameters: {weight: 1.0}
  - model: ft2
    parameters: {weight: 3.0}
`,
  nuslerp_rows: `merge_method: nuslerp
base_model: base
models:
  - model: base
  - model: ft1
    parameters: {weight: 2.0}
  - model: ft3
    parameters: {weight: 1.0}
parameters: {nuslerp_flatten: false}
`,
  nuslerp_columns: `merge_method: nuslerp
models:
  - model: ft2
    parameters: {weight: 1.0}
  - model: ft3
    parameters: {weight: 1.0}
parameters: {nuslerp_flatten: false, nuslerp_row_wise: true}
`,
  multislerp: `merge_method: multislerp
base_model: base
models:
  - model: ft1
    parameters: {weight: 0.5}
  - model: ft2
    parameters: {weight: 0.3}
  - model: ft3
    parameters: {weight: 0.2}
`,
  karcher: `merge_method: karcher
models:
  - model: ft1
  - model: ft2
  - model: ft3
`,
  sce: `merge_method: sce
base_model: base
models:
  - model: ft1
  - model: ft2
  - model: ft3
`,
  sce_top_half: `merge_method: sce
base_model: base
models:
  - model: ft1
  - model: ft2
  - model: ft3
parameters: {select_topk: 0.5, int8_mask: true}
`,
  arcee_fusion: `merge_method: arcee_fusion
base_model: base
models:
  - model: ft1
`,
  passthrough: `merge_method: passthrough
models:
  - model: ft3
    parameters: {scale: 0.5}
`,
};

/** One unit in the last place of float32 at magnitude `x`. */
function ulpAt(x: number): number {
  return 2 ** (Math.floor(Math.log2(Math.abs(x))) - 23);
}

describe.each(Object.keys(CONFIGS))('%s agrees with mergekit', (name) => {
  it.each([0, 2])('to float32 rounding (threads: %i)', async (threads) => {
    const config = parseMergeConfig(CONFIGS[name], `${name}.yml`, FIXTURES);
    const out = join(tempDir(), 'out');
    await runMerge(planMerge(config), out, { threads });
    const expected = tensors(join(FIXTURES, 'expected', `${name}.safetensors`));
    const actual = tensors(out);
    const inputs = ['base', 'ft1', 'ft2', 'ft3', 'scaled'].map((m) => tensors(join(FIXTURES, m)));
    expect([...actual.keys()]).toEqual([...expected.keys()]);
    const disagreements: string[] = [];
    for (const [tensor, want] of expected) {
      const got = actual.get(tensor)!;
      const scale = Math.max(...inputs.map((t) => Math.max(...Array.from(t.get(tensor)!, Math.abs))));
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      if (worst > 2 * ulpAt(scale)) disagreements.push(`"${tensor}" differs by ${worst} (${worst / ulpAt(scale)} ulps of its largest input)`);
    }
    expect(disagreements).toEqual([]);
  });
});
