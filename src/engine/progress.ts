/** Progress reporting shared by every long engine operation (merge, importance, evaluation). */

export interface ProgressEvent {
  /** What is running, e.g. "merge". */
  phase: string;
  done: number;
  total: number;
  /** Seconds left, estimated from the rate so far; undefined until something is done. */
  etaSeconds: number | undefined;
  message: string;
}

export type ProgressCallback = (event: ProgressEvent) => void;

/** Tracks done/total against wall time and produces ProgressEvents with an ETA. */
export class ProgressTracker {
  private readonly started = Date.now();

  constructor(
    private readonly phase: string,
    private readonly total: number,
    private readonly callback: ProgressCallback | undefined,
  ) {}

  report(done: number, message: string): void {
    if (!this.callback) return;
    const elapsed = (Date.now() - this.started) / 1000;
    const etaSeconds = done > 0 ? (elapsed / done) * (this.total - done) : undefined;
    this.callback({ phase: this.phase, done, total: this.total, etaSeconds, message });
  }
}
