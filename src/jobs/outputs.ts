/** Job output directories: one per job id, published whole by the engine's staging + rename, or not at all. */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, CheckpointError, MergeInputError } from '../engine/errors';

export function jobOutputDirectory(root: string, kind: 'merges' | 'analyses', id: string): string {
  return join(root, kind, id);
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

/** Errors that another attempt would meet again: the job fails at once instead of being retried. */
export function isPermanent(err: unknown): boolean {
  return err instanceof ConfigError || err instanceof MergeInputError || err instanceof CheckpointError;
}
