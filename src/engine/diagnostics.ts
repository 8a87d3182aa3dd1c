/** Process measurements for benchmarks and memory tests. */
import { readFileSync } from 'node:fs';

/**
 * Peak resident memory of this process, in bytes. On Linux this is VmHWM, which starts afresh at
 * exec; getrusage's maxrss does not (a child reports at least its parent's peak at fork time), so
 * it is only the fallback elsewhere.
 */
export function peakResidentBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
