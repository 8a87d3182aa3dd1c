/**
 * Reads made in one turn of the event loop — concurrent API requests, mostly — sent to the
 * database as one statement over all their keys (DataLoader, batching only: nothing is cached,
 * every read sees the registry as it is at that statement). Under load a statement per request
 * becomes a statement per batch. One loader per client and statement kind.
 */
import DataLoader from 'dataloader';

const loaders = new WeakMap<object, Map<string, DataLoader<unknown, unknown>>>();

/** `load` answers the keys of one batch (a value or an Error each, in their order). */
export function turnBatcher<K, V>(owner: object, kind: string, load: (keys: readonly K[]) => Promise<Array<V | Error>>): DataLoader<K, V> {
  let mine = loaders.get(owner);
  if (!mine) loaders.set(owner, (mine = new Map()));
  let loader = mine.get(kind) as DataLoader<K, V> | undefined;
  if (!loader) {
    loader = new DataLoader<K, V>(load, { cache: false, batchScheduleFn: (run) => setImmediate(run), maxBatchSize: 500 });
    mine.set(kind, loader as DataLoader<unknown, unknown>);
  }
  return loader;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A row id as batched reads key it (lower case); a malformed one would fail the whole batch it joins, so it is refused alone. */
export function batchKey(id: string, what: string): string {
  if (!UUID.test(id)) throw new RangeError(`"${id.slice(0, 80)}" is not a ${what} id (a UUID)`);
  return id.toLowerCase();
}

/** A Map that forgets its oldest entry past `capacity`. */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly capacity: number) {
    super();
  }
  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.capacity) this.delete(this.keys().next().value as K);
    return super.set(key, value);
  }
}

/**
 * A value read over and over (a version counter), for callers that each need a read made no
 * earlier than their request began (`since`, performance.now()). Any read that began at or after
 * `since` shows the database as it was at some moment of that request — all a read of its own would
 * show — so callers share: the newest finished read if it is recent enough, else the first one in
 * flight that is, else a new one.
 */
export class SharedReads<T> {
  private finished?: { startedAt: number; value: T };
  private inFlight: Array<{ startedAt: number; value: Promise<T> }> = [];

  constructor(private readonly read: () => Promise<T>) {}

  get(since: number): Promise<T> {
    if (this.finished && this.finished.startedAt >= since) return Promise.resolve(this.finished.value);
    const waiting = this.inFlight.find((read) => read.startedAt >= since);
    if (waiting) return waiting.value;
    // Taken before the read is sent: it shows the database at startedAt or later.
    const read = { startedAt: performance.now(), value: this.read() };
    this.inFlight.push(read);
    const done = () => (this.inFlight = this.inFlight.filter((r) => r !== read));
    read.value.then(
      (value) => {
        done();
        if (!this.finished || this.finished.startedAt < read.startedAt) this.finished = { startedAt: read.startedAt, value };
      },
      done,
    );
    return read.value;
  }
}
