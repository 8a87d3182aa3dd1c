/** A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal. */
import { ProgressCallback, ProgressEvent } from '../engine/progress';

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  return `${m}m${String(Math.round(seconds - m * 60)).padStart(2, '0')}s`;
}

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): { onProgress: ProgressCallback | undefined; done: () => void } {
  if (!stream.isTTY) return { onProgress: undefined, done: () => undefined };
  let lastDraw = 0;
  let drawn = false;
  const draw = (event: ProgressEvent) => {
    const now = Date.now();
    if (event.done < event.total && now - lastDraw < 100) return;
    lastDraw = now;
    const width = 30;
    const fraction = event.total > 0 ? event.done / event.total : 1;
    const filled = Math.round(fraction * width);
    const eta = event.etaSeconds !== undefined && event.done < event.total ? ` ETA ${formatSeconds(event.etaSeconds)}` : '';
    const columns = stream.columns ?? 100;
    const line = `${event.phase} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${event.done}/${event.total}${eta} ${event.message}`;
    stream.write(`\r${line.slice(0, columns - 1).padEnd(columns - 1)}`);
    drawn = true;
  };
  return {
    onProgress: draw,
    done: () => {
      if (drawn) stream.write('\n');
    },
  };
}
