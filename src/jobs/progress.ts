/**
 * The engine's progress callback, turned into rows and events. The engine reports often and
 * synchronously; the recorder writes at most one event per phase every `intervalMs` (always the
 * first and the last of a phase), one write at a time and in order, so what subscribers see is
 * monotone within a phase. A write that fails is reported and skipped. When a write finds the job no longer RUNNING (cancelled elsewhere),
 * `onStopped` fires so the worker can abort the engine even if the cancel NOTIFY was missed.
 */
import { ProgressEvent } from '../engine/progress';
import { PrismaClient } from '../store/generated/client';
import { JobKind, recordProgress } from '../store/jobs';

export interface ProgressRecorder {
  onProgress: (event: ProgressEvent) => void;
  /** Waits until every event reported so far is written (or has failed to be). */
  flush: () => Promise<void>;
}

export function progressRecorder(prisma: PrismaClient, kind: JobKind, id: string, onStopped: () => void, onWriteError: (err: Error) => void, lease?: string, intervalMs = 200): ProgressRecorder {
  let chain: Promise<void> = Promise.resolve();
  let lastPhase = '';
  let lastDone = -1;
  let lastWrite = 0;
  const write = (event: ProgressEvent) => {
    chain = chain.then(async () => {
      try {
        const running = await recordProgress(prisma, kind, id, { phase: event.phase, done: event.done, total: event.total, etaSeconds: event.etaSeconds ?? null, message: event.message }, lease);
        if (!running) onStopped();
      } catch (err) {
        // A lost progress event is not worth failing the job for; the final status is written apart.
        onWriteError(err as Error);
      }
    });
  };
  return {
    onProgress: (event) => {
      const newPhase = event.phase !== lastPhase;
      if (!newPhase && event.done <= lastDone) return;
      const now = Date.now();
      if (!newPhase && event.done < event.total && now - lastWrite < intervalMs) return;
      lastPhase = event.phase;
      lastDone = event.done;
      lastWrite = now;
      write(event);
    },
    flush: () => chain,
  };
}
