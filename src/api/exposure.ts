/**
 * What callers without the admin role may see of the server's file system: nothing absolute.
 * Paths under a data root are shown as `data://ROOT/relative` (the form requests accept too);
 * other known server directories (the job outputs, the data directory) as "(server path)"; any
 * other `file://` URI as its file name only. Applied to whole responses (data and errors, over
 * HTTP and WebSocket), so a field added later cannot leak a path by being forgotten here.
 */
import { DataRoot, DATA_URI_SCHEME, PathReplacement, redactRootPaths, rootReplacements } from '../store/data-roots';

const OTHER_FILE_URI = /file:\/\/\/[^\s"'`,;)]*/g;

export class PathRedactor {
  private readonly replacements: PathReplacement[];

  constructor(
    private readonly roots: readonly DataRoot[],
    private readonly hidden: readonly string[],
  ) {
    this.replacements = rootReplacements(roots, hidden);
  }

  text(text: string): string {
    if (!text.includes('/')) return text;
    return redactRootPaths(text, this.roots, this.hidden, this.replacements).replace(OTHER_FILE_URI, (uri) => `${DATA_URI_SCHEME}(outside the data roots)/${uri.split('/').pop()}`);
  }

  /** A copy of a JSON value with every string redacted (object keys too: reports may be keyed by file). */
  value<T>(value: T): T {
    if (typeof value === 'string') return this.text(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.value(v)) as T;
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [this.text(k), this.value(v)])) as T;
    }
    return value;
  }
}
