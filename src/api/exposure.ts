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

  /**
   * The JSON value with every string redacted (object keys too: reports may be keyed by file). Parts
   * with nothing to redact are returned as they are, not copied: most answers (ids, names, numbers)
   * hold no path, and copying each one cost more than the query behind it.
   */
  value<T>(value: T): T {
    if (typeof value === 'string') return this.text(value) as T;
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        const redacted = this.value(item);
        if (redacted !== item && !copy) copy = value.slice(0, i);
        copy?.push(redacted);
      }
      return (copy ?? value) as T;
    }
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      const record = value as Record<string, unknown>;
      let copy: Record<string, unknown> | undefined;
      for (const key in record) {
        if (!Object.hasOwn(record, key)) continue;
        const item = record[key];
        const redactedKey = this.text(key);
        const redacted = this.value(item);
        if (!copy && (redactedKey !== key || redacted !== item)) {
          copy = {};
          for (const earlier in record) {
            if (earlier === key) break;
            if (Object.hasOwn(record, earlier)) copy[this.text(earlier)] = record[earlier];
          }
        }
        if (copy) copy[redactedKey] = redacted;
      }
      return (copy ?? value) as T;
    }
    return value;
  }
}
