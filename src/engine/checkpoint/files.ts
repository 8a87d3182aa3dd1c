/**
 * Atomic publication of an output directory and file hashing.
 * Output is built in a staging directory beside the target (same filesystem, so rename is atomic)
 * and renamed into place only when complete; a failure removes the staging directory.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { compiledModule } from '../compiled';

/**
 * sha256 of a file, read and hashed on a thread of its own (running sha256File): the calling
 * thread (a server's event loop) stays free however large the file is.
 */
export function sha256FileAsync(path: string): Promise<string> {
  const program = `const { parentPort, workerData } = require('node:worker_threads'); parentPort.postMessage(require(${JSON.stringify(compiledModule(__dirname, 'files.js'))}).sha256File(workerData));`;
  return new Promise((resolve, reject) => {
    const thread = new Worker(program, { eval: true, workerData: path });
    let digest: string | undefined;
    thread.once('message', (hex: string) => (digest = hex));
    thread.once('error', reject);
    thread.once('exit', (code) => (digest !== undefined ? resolve(digest) : reject(new Error(`${path}: hashing stopped (exit code ${code})`))));
  });
}

export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  const chunk = new Uint8Array(8 * 1024 * 1024);
  try {
    let position = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.byteLength, position);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
      position += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Why an output directory cannot be used, or undefined when it can. */
export function outputDirectoryProblem(outDir: string, overwrite: boolean): string | undefined {
  if (!existsSync(outDir)) return undefined;
  if (!statSync(outDir).isDirectory()) return `${outDir} exists and is not a directory`;
  if (readdirSync(outDir).length > 0 && !overwrite) return `${outDir} exists and is not empty (pass --overwrite to replace it)`;
  return undefined;
}

export function createStagingDirectory(outDir: string): string {
  const absolute = resolve(outDir);
  mkdirSync(dirname(absolute), { recursive: true });
  return mkdtempSync(`${dirname(absolute)}/.${basename(absolute)}.tmp-`);
}

function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Moves a finished staging directory to outDir, replacing an existing one when allowed. */
export function publishDirectory(staging: string, outDir: string, overwrite: boolean): void {
  const absolute = resolve(outDir);
  const problem = outputDirectoryProblem(absolute, overwrite);
  if (problem) throw new Error(problem);
  fsyncDirectory(staging);
  if (existsSync(absolute)) {
    const previous = `${staging}.previous`;
    renameSync(absolute, previous);
    renameSync(staging, absolute);
    rmSync(previous, { recursive: true, force: true });
  } else {
    renameSync(staging, absolute);
  }
  fsyncDirectory(dirname(absolute));
}
