/** Job output directories: one per job id, published whole by the engine's staging + rename, or not at all. */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, CheckpointError, MergeInputError } from '../engine/errors';
import type { JobKind } from '../store/jobs';

/** The folder of an output root that holds each kind of job's outputs (an evaluation writes rows only: its folder stays empty). */
export const OUTPUT_FOLDERS: Record<JobKind, string> = { merge: 'merges', analysis: 'analyses', evaluation: 'evaluations' };

export function jobOutputDirectory(root: string, kind: JobKind, id: string): string {
  return join(root, OUTPUT_FOLDERS[kind], id);
}

/** Removes the staging directories a killed attempt left beside `outDir` (their names start with `.<name>.tmp-`). */
export function removeStaleStaging(outDir: string): void {
  const prefix = `.${basename(outDir)}.tmp-`;
  let entries: string[];
  try {
    entries = readdirSync(dirname(outDir));
  } catch {
    return;
  }
  for (const entry of entries) if (entry.startsWith(prefix)) rmSync(join(dirname(outDir), entry), { recursive: true, force: true });
}

/** Removes a job's output directory and any staging beside it: a job that did not complete leaves nothing. */
export function removeJobOutput(outDir: string): void {
  rmSync(outDir, { recursive: true, force: true });
  removeStaleStaging(outDir);
}

/**
 * What crashed attempts and failed jobs may have left under an output root: staging directories of
 * jobs that are not running now (a running job's belong to its attempt), and the published output
 * of jobs that FAILED or were CANCELLED. Returns what was removed.
 */
export async function sweepOutputs(root: string, statusOf: (kind: JobKind, id: string) => Promise<string | undefined>): Promise<string[]> {
  const removed: string[] = [];
  for (const kind of Object.keys(OUTPUT_FOLDERS) as JobKind[]) {
    const dir = join(root, OUTPUT_FOLDERS[kind]);
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const staging = /^\.([0-9a-f-]{36})\.tmp-/.exec(entry);
      const id = staging ? staging[1] : /^[0-9a-f-]{36}$/.test(entry) ? entry : undefined;
      if (!id) continue;
      const status = await statusOf(kind, id);
      const stale = staging ? status !== 'RUNNING' : status === 'FAILED' || status === 'CANCELLED';
      if (!stale) continue;
      rmSync(join(dir, entry), { recursive: true, force: true });
      removed.push(join(dir, entry));
    }
  }
  return removed;
}

/** Errors that another attempt would meet again: the job fails at once instead of being retried. */
export function isPermanent(err: unknown): boolean {
  return err instanceof ConfigError || err instanceof MergeInputError || err instanceof CheckpointError;
}
