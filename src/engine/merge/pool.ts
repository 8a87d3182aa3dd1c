/**
 * Runs TensorJobs on worker threads (one per core by default) or inline (threads = 0).
 * The WASM and typed-array work is single-threaded per isolate, so threads are how a merge uses
 * every core; each worker reads its own inputs with positioned reads, so the main thread only
 * writes and hashes.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { compiledModule } from '../compiled';
import { CheckpointError, MergeInputError } from '../errors';
import { createJobContext, JobContext, runTensorJob, TensorJob, TensorResult } from './tensor-job';

export function defaultThreadCount(): number {
  return availableParallelism();
}

const workerScript = (): string => compiledModule(__dirname, 'tensor-worker.js');

interface Pending {
  resolve: (result: TensorResult) => void;
  reject: (error: Error) => void;
}

type WorkerReply =
  | { id: number; result: TensorResult }
  | { id: number; error: { name: string; message: string; file?: string; tensor?: string; reason?: string } };

function reviveError(error: { name: string; message: string; file?: string; tensor?: string; reason?: string }): Error {
  if (error.name === 'CheckpointError' && error.file && error.reason) return new CheckpointError(error.file, error.reason, error.tensor);
  // Its class says "another attempt would fail the same way" to whoever retries jobs.
  if (error.name === 'MergeInputError') return new MergeInputError(error.message);
  const revived = new Error(error.message);
  revived.name = error.name;
  return revived;
}

export class TensorPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<{ id: number; job: TensorJob }> = [];
  private readonly pending = new Map<number, Pending>();
  private readonly inline: JobContext | undefined;
  private nextId = 0;
  private nextRecycle = 0;
  private failure: Error | undefined;

  constructor(readonly threads: number) {
    if (threads <= 0) {
      this.inline = createJobContext();
      return;
    }
    const script = workerScript();
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(script);
      worker.on('message', (reply: WorkerReply) => this.onReply(worker, reply));
      worker.on('error', (err) => this.failAll(err));
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  /** Tensors kept in flight: every thread busy, memory bounded. */
  get window(): number {
    return Math.max(2, this.threads * 2);
  }

  run(job: TensorJob): Promise<TensorResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inline) {
      const context = this.inline;
      // Yield first so a caller's AbortSignal and I/O callbacks get a turn between tensors.
      return new Promise((resolvePromise, reject) =>
        setImmediate(() => {
          try {
            resolvePromise(runTensorJob(job, context));
          } catch (err) {
            reject(err as Error);
          }
        }),
      );
    }
    const id = this.nextId++;
    return new Promise((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise, reject });
      this.queue.push({ id, job });
      this.dispatch();
    });
  }

  /** Hands a result's buffer back for reuse once its bytes are written (round-robin over workers). */
  recycle(bytes: Uint8Array): void {
    const buffer = bytes.buffer as ArrayBuffer;
    if (bytes.byteOffset !== 0 || bytes.byteLength !== buffer.byteLength) return;
    if (this.inline) {
      this.inline.buffers.give(buffer);
      return;
    }
    const worker = this.workers[this.nextRecycle++ % this.workers.length];
    worker.postMessage({ recycle: buffer }, [buffer]);
  }

  async close(): Promise<void> {
    this.inline?.reader.close();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      worker.postMessage(this.queue.shift()!);
    }
  }

  private onReply(worker: Worker, reply: WorkerReply): void {
    const pending = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    this.idle.push(worker);
    if (pending) {
      if ('error' in reply) pending.reject(reviveError(reply.error));
      else pending.resolve(reply.result);
    }
    this.dispatch();
  }

  private failAll(err: Error): void {
    this.failure = err;
    for (const pending of this.pending.values()) pending.reject(err);
    this.pending.clear();
  }
}
