/**
 * What jobs leave on disk, with a real worker process: a worker sweeps what crashed attempts and
 * failed jobs left before it started; a merge whose values overflow fails at once naming the
 * tensor (or completes with the warnings recorded when the request says WARN); a job that fails
 * every attempt ends FAILED through the dead-letter queue; a full disk fails the merge naming the
 * file, and leaves no staging directory and no registered model.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { waitFor } from './helpers/graphql';
import { expectJobInvariants } from './helpers/invariants';
import { startTestPlatform, TestPlatform } from './helpers/platform';

jest.setTimeout(120000);

let platform: TestPlatform;
const ids = { base: '', ft: '' };
/** Worker processes open the queue with these settings too (the last to open it sets them). */
const WORKER_ENV = { APL_MERGE_HEARTBEAT_SECONDS: '10', APL_MERGE_RETRY_LIMIT: '1', APL_MERGE_SUPERVISE_SECONDS: '1' };
const START = 'mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }';

const finished = (id: string) =>
  waitFor(async () => ['COMPLETED', 'FAILED', 'CANCELLED'].includes((await platform.prisma.merge.findUniqueOrThrow({ where: { id } })).status), `merge ${id} to end`, 60000).then(() => platform.prisma.merge.findUniqueOrThrow({ where: { id } }));

async function start(input: Record<string, unknown>): Promise<string> {
  const result = await platform.gql<{ startMerge: { merge: { id: string } } }>(START, { input });
  expect(result.errors).toBeUndefined();
  return result.data!.startMerge.merge.id;
}

beforeAll(async () => {
  // Lost jobs noticed after 10 s (pg-boss's least), one retry: a job that always fails ends in the dead-letter queue quickly.
  platform = await startTestPlatform({ heartbeatSeconds: 10, retryLimit: 1, superviseSeconds: 1 });
  writeSyntheticFamily(join(platform.root, 'models'), { tensors: [{ name: 'layers.0.w', shape: [256, 256] }], fineTunes: 1, seed: 4 });
  const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
  ids.base = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(platform.root, 'models/base') } })).data!.registerModel.model.id;
  ids.ft = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'ft', kind: 'FINETUNE', path: join(platform.root, 'models/finetune-1'), parentIds: [ids.base] } })).data!.registerModel.model.id;
});

afterAll(() => platform?.stop());

it('a starting worker removes staging of jobs not running and outputs of failed or cancelled jobs, and nothing else', async () => {
  const merge = (status: 'FAILED' | 'CANCELLED' | 'COMPLETED' | 'RUNNING') => platform.prisma.merge.create({ data: { method: 'linear', parameters: {}, status } });
  const [failed, cancelled, completed, running] = await Promise.all([merge('FAILED'), merge('CANCELLED'), merge('COMPLETED'), merge('RUNNING')]);
  const dir = join(platform.outputs, 'merges');
  const entries = [`.${failed.id}.tmp-1`, cancelled.id, completed.id, `.${running.id}.tmp-2`, `.${randomUUID()}.tmp-3`, 'notes'];
  for (const entry of entries) mkdirSync(join(dir, entry), { recursive: true });
  const worker = await platform.startWorker(WORKER_ENV);
  expect(worker.output()).toMatch(/removed 3 stale output\(s\)/);
  expect(readdirSync(dir).sort()).toEqual([completed.id, `.${running.id}.tmp-2`, 'notes'].sort());
  await worker.stop();
});

it('fails a merge whose values overflow, naming the tensor, with no output; WARN completes it and records the warning', async () => {
  const worker = await platform.startWorker(WORKER_ENV);
  try {
    const models = [{ modelId: ids.ft, parameters: { weight: 1e308 } }];
    const overflow = await finished(await start({ name: 'overflow', method: 'task_arithmetic', baseModelId: ids.base, models }));
    expect(overflow).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(overflow.error).toMatch(/tensor "layers\.0\.w": the merged values have \d+ non-finite value\(s\) \(NaN or Inf\), first at flat index \d+/);
    expect(existsSync(join(platform.outputs, 'merges', overflow.id))).toBe(false);
    expect(readdirSync(join(platform.outputs, 'merges')).filter((e) => e.includes(overflow.id))).toEqual([]);
    const warned = await finished(await start({ name: 'overflow-warned', method: 'task_arithmetic', baseModelId: ids.base, models, nonFinite: 'WARN' }));
    expect(warned.status).toBe('COMPLETED');
    expect(warned.result).toMatchObject({ warnings: 1, nonFiniteValues: [{ model: 'merged output', tensor: 'layers.0.w', count: expect.any(Number) }] });
  } finally {
    await worker.stop();
  }
});

it('a merge that fails every attempt ends FAILED through the dead-letter queue, and a full disk is named with the file', async () => {
  // Job outputs on a 64 KiB file system: the 256 KiB merged tensor cannot be written.
  const small = join(platform.root, 'small-disk');
  mkdirSync(small, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small], { stdio: 'ignore' });
  } catch {
    console.warn('skipped: a tmpfs cannot be mounted here, so a full disk cannot be made');
    return;
  }
  try {
    const worker = await platform.startWorker({ ...WORKER_ENV, APL_MERGE_OUTPUT_DIR: small });
    try {
      const id = await start({ name: 'too-big', method: 'linear', models: [{ modelId: ids.ft, parameters: { weight: 1 } }] });
      const merge = await finished(id);
      expect(merge).toMatchObject({ status: 'FAILED', attempts: 2 });
      expect(merge.error).toMatch(new RegExp(`${small}/merges/\\.${id}\\.tmp-[^/]+/model\\.safetensors: cannot write: no space left on the device \\(ENOSPC\\)`));
      const events = await platform.prisma.jobEvent.findMany({ where: { jobId: id, phase: 'status' }, orderBy: { id: 'asc' } });
      expect(events.at(-1)!.message).toMatch(/failed after 2 attempt\(s\): .*no space left on the device/);
      expect(readdirSync(join(small, 'merges'))).toEqual([]);
      expect(await platform.prisma.model.count({ where: { name: 'too-big' } })).toBe(0);
    } finally {
      await worker.stop();
    }
  } finally {
    execFileSync('umount', [small]);
  }
});

it('leaves, after all of the above, every job ended and nothing orphaned', async () => {
  // The first test's hand-made rows and folders stand for what crashed runs leave; take them away first.
  const handMade = await platform.prisma.merge.findMany({ where: { inputs: { none: {} } }, select: { id: true } });
  for (const { id } of handMade) rmSync(join(platform.outputs, 'merges', id), { recursive: true, force: true });
  await platform.prisma.merge.deleteMany({ where: { id: { in: handMade.map((m) => m.id) } } });
  rmSync(join(platform.outputs, 'merges', 'notes'), { recursive: true, force: true });
  for (const entry of readdirSync(join(platform.outputs, 'merges'))) if (entry.startsWith('.')) rmSync(join(platform.outputs, 'merges', entry), { recursive: true, force: true });
  await expectJobInvariants(platform.prisma, [platform.outputs]);
});
