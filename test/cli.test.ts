/** The real command line, run as a child process against files on disk. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatBytes } from '../src/cli/format';
import { terminalProgress } from '../src/cli/progress-bar';
import { sha256File } from '../src/engine/checkpoint/files';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { removeTempDirs, tempDir } from './helpers/files';

afterAll(removeTempDirs);

const BIN = resolve(__dirname, '../bin/apl-merge.js');

function cli(args: string[], cwd?: string, env?: Record<string, string>) {
  const child = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd, env: env && { ...process.env, ...env } });
  return { code: child.status, stdout: child.stdout, stderr: child.stderr };
}

describe('apl-merge CLI', () => {
  let root: string;
  beforeAll(() => {
    root = tempDir();
    writeSyntheticFamily(join(root, 'models'), {
      tensors: [
        { name: 'layers.0.w', shape: [8, 8] },
        { name: 'layers.1.w', shape: [8, 8] },
      ],
      fineTunes: 2,
      seed: 1,
    });
    writeFileSync(
      join(root, 'ties.yml'),
      'merge_method: ties\nbase_model: models/base\nmodels:\n  - model: models/finetune-1\n  - model: models/finetune-2\nparameters: {weight: 1, density: 0.5}\n',
    );
  });

  it('merges from a YAML config and prints the files with their sha256', () => {
    const out = join(root, 'merged');
    const run = cli(['merge', join(root, 'ties.yml'), out]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('merged 2 tensors (128 parameters) with ties');
    expect(run.stdout).toContain(`model.safetensors  ${formatBytes(readFileSync(join(out, 'model.safetensors')).byteLength)}  sha256 ${sha256File(join(out, 'model.safetensors'))}`);
    expect(run.stdout).not.toContain('\r'); // no progress bar when not on a terminal
  });

  it('prints JSON with --json, including the seed for a seeded method', () => {
    writeFileSync(join(root, 'dare.yml'), 'merge_method: dare_ties\nbase_model: models/base\nmodels:\n  - model: models/finetune-1\nparameters: {weight: 1, density: 0.5}\nseed: 9\n');
    const run = cli(['merge', '--json', '--threads', '0', join(root, 'dare.yml'), join(root, 'dare')]);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.seed).toBe(9);
    expect(result.method).toBe('dare_ties');
    expect(result.sha256).toBe(sha256File(join(root, 'dare', 'model.safetensors')));
  });

  it('merges on the GPU with --backend webgpu, and says so', () => {
    const run = cli(['merge', '--backend', 'webgpu', join(root, 'ties.yml'), join(root, 'on-gpu')]);
    if (run.code !== 0 && /no WebGPU adapter/.test(run.stderr)) return console.warn('skipped: no WebGPU adapter');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/device: 2 tensors on the GPU \(.+\), 0 on the CPU/);
  });

  it('asked for a GPU where Vulkan finds none, fails with the reason and writes nothing', () => {
    // No Vulkan driver at all: the loader is pointed at a driver list that does not exist.
    const out = join(root, 'no-gpu');
    const run = cli(['merge', '--backend', 'webgpu', join(root, 'ties.yml'), out], undefined, { VK_ICD_FILENAMES: join(root, 'no-such-driver.json'), VK_DRIVER_FILES: join(root, 'no-such-driver.json') });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('error: no WebGPU adapter: install the optional package "webgpu" and run on a machine with a GPU and a Vulkan driver');
    expect(existsSync(out)).toBe(false);
  });

  it('inspects a checkpoint: tensors, dtypes, shapes, parameter count, sha256', () => {
    const run = cli(['inspect', join(root, 'models/base')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('single-file, 2 tensors, 128 parameters, 512 B of data');
    expect(run.stdout).toContain('dtypes: F32 128');
    expect(run.stdout).toMatch(/layers\.0\.w {2}F32 +\[8, 8\]/);
    expect(run.stdout).toContain(`sha256 ${sha256File(join(root, 'models/base/model.safetensors'))}`);
    const json = JSON.parse(cli(['inspect', '--json', join(root, 'models/base')]).stdout);
    expect(json.parameterCount).toBe(128);
    expect(json.tensors[1]).toEqual({ name: 'layers.1.w', dtype: 'F32', shape: [8, 8], file: 'model.safetensors' });
  });

  it('exits 1 with a message naming the unsupported key, and writes nothing', () => {
    writeFileSync(join(root, 'bad.yml'), 'merge_method: ties\nbase_model: models/base\nmodels: [{model: models/finetune-1}]\nchat_template: chatml\n');
    const run = cli(['merge', join(root, 'bad.yml'), join(root, 'never')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: .*bad\.yml: chat_template: unsupported key/);
    expect(cli(['inspect', join(root, 'never')]).stderr).toMatch(/never: does not exist/);
  });

  it('has --help on every command', () => {
    for (const command of [[], ['merge'], ['inspect'], ['methods'], ['demo']]) {
      const run = cli([...command, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Usage: apl-merge/);
    }
    expect(cli(['methods']).stdout).toMatch(/ties — TIES \(https:\/\/arxiv.org\/abs\/2306.01708\), needs base_model\n {4}global normalize \(boolean, default true\)/);
  });

  it('draws a progress bar only on a terminal', () => {
    const writes: string[] = [];
    const fakeTerminal = { isTTY: true, columns: 80, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const bar = terminalProgress(fakeTerminal);
    bar.onProgress!({ phase: 'merge', done: 1, total: 2, etaSeconds: 3, message: 'layers.0.w' });
    bar.onProgress!({ phase: 'merge', done: 2, total: 2, etaSeconds: 0, message: 'layers.1.w' });
    bar.done();
    expect(writes[0]).toMatch(/^\rmerge \[#{15}-{15}\] 1\/2 ETA 3\.0s layers\.0\.w/);
    expect(writes[1]).toMatch(/^\rmerge \[#{30}\] 2\/2 layers\.1\.w/);
    expect(writes[2]).toBe('\n');
    const pipe = { isTTY: false } as unknown as NodeJS.WriteStream;
    expect(terminalProgress(pipe).onProgress).toBeUndefined();
  });
});
