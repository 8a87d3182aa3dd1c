/**
 * Fault injection for the test suite and for operators reproducing a problem: a job attempt can
 * be held at named points between its steps, so that a cancel, a kill or a database restart can be
 * made to land in that step every time instead of by luck of timing. Set
 * APL_MERGE_PAUSE_AT="merge:scored=2000,analysis:computed=500" (kind:point=milliseconds). Unset,
 * it costs nothing. The points, in the order an attempt passes them:
 * - started: the attempt owns the job, nothing computed yet;
 * - computed: the engine is done (a merge written to staging and published, scores computed);
 * - scored: a merge's output is evaluated, not yet registered;
 * - published: an analysis's artifact is in place, not yet recorded.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobKind } from '../store/jobs';

export type PausePoint = 'started' | 'computed' | 'scored' | 'published';
const POINTS: readonly PausePoint[] = ['started', 'computed', 'scored', 'published'];

/** The pauses $APL_MERGE_PAUSE_AT asks for, by "kind:point"; an entry that does not parse is an error naming it. */
export function pausesFromEnv(text = process.env.APL_MERGE_PAUSE_AT ?? ''): Map<string, number> {
  const pauses = new Map<string, number>();
  for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
    const match = /^(merge|analysis|evaluation):([a-z]+)=(\d+)$/.exec(entry);
    if (!match || !POINTS.includes(match[2] as PausePoint)) throw new Error(`APL_MERGE_PAUSE_AT: "${entry}" is not kind:point=milliseconds (kinds merge, analysis, evaluation; points ${POINTS.join(', ')})`);
    pauses.set(`${match[1]}:${match[2]}`, Number(match[3]));
  }
  return pauses;
}

/**
 * Holds the attempt at `point` when asked to (saying so in the log), then stops it if its signal
 * was aborted meanwhile, as the engine does between its own steps.
 */
export async function passPoint(pauses: ReadonlyMap<string, number>, kind: JobKind, id: string, point: PausePoint, signal: AbortSignal, log: (line: string) => void): Promise<void> {
  const ms = pauses.get(`${kind}:${point}`);
  if (ms !== undefined) {
    log(`${kind} ${id}: holding at ${point} for ${ms} ms (APL_MERGE_PAUSE_AT)`);
    await sleep(ms, undefined, { signal }).catch(() => undefined);
  }
  signal.throwIfAborted();
}
