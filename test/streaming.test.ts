/**
 * Peak memory of a merge must not grow with the number of tensors. Child processes merge the
 * same family with 24 and with 96 tensors of 1 MiB (72 vs 288 MiB of inputs) and report their
 * peak RSS: the larger merge may not need more than a few tensors' worth more memory.
 * (Memory, unlike time, is stable enough on shared machines to assert.)
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

const TENSOR_BYTES = 1024 * 1024;

function peakRssOfMerge(tensors: number): { peak: number; inputBytes: number } {
  const root = tempDir();
  writeSyntheticFamily(join(root, 'models'), {
    tensors: Array.from({ length: tensors }, (_, i) => ({ name: `layers.${i}.w`, shape: [256, 1024] })),
    fineTunes: 2,
    seed: 2,
  });
  const config = join(root, 'ties.yml');
  writeFileSync(config, 'merge_method: ties\nbase_model: models/base\nmodels:\n  - model: models/finetune-1\n  - model: models/finetune-2\nparameters: {weight: 1, density: 0.2}\n');
  const dist = (p: string) => JSON.stringify(resolve(__dirname, '../dist/src/engine/merge', p));
  const script = `
    const { peakResidentBytes } = require(${JSON.stringify(resolve(__dirname, '../dist/src/engine/diagnostics.js'))});
    const { readMergeConfig } = require(${dist('config.js')});
    const { planMerge } = require(${dist('plan.js')});
    const { runMerge } = require(${dist('run.js')});
    runMerge(planMerge(readMergeConfig(${JSON.stringify(config)})), ${JSON.stringify(join(root, 'out'))}, { threads: 2 })
      .then((r) => console.log(JSON.stringify({ peak: peakResidentBytes(), inputBytes: r.inputBytes })));
  `;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(child.stderr).toBe('');
  return JSON.parse(child.stdout);
}

it('keeps peak RSS independent of the number of tensors', () => {
  const small = peakRssOfMerge(24);
  const large = peakRssOfMerge(96);
  expect(large.inputBytes).toBe(3 * 96 * TENSOR_BYTES);
  // 216 MiB more input may cost no more than 24 tensors' worth (8 tensors × 3 checkpoints).
  expect(large.peak - small.peak).toBeLessThan(24 * TENSOR_BYTES);
  expect(large.peak).toBeLessThan(large.inputBytes / 2);
});
