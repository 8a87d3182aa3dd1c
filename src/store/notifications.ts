/**
 * LISTEN on a channel with a connection of its own: job events, cancels and token revocations
 * travel this way between processes. The connection is kept: when the database restarts (or the
 * connection is cut), it is opened again with backoff and LISTENs again, and `onReconnect` is
 * called so the listener can re-read whatever was notified while it was away — NOTIFY is not
 * queued for a listener that is not connected.
 */
import { Client } from 'pg';

export interface Listener {
  close: () => Promise<void>;
}

export interface ListenOptions {
  /** Called after a lost connection is back and listening again. */
  onReconnect?: () => void;
  /** Called when the connection is lost (notifications sent from now until onReconnect are missed). */
  onDisconnect?: () => void;
  log?: (line: string) => void;
  /** First and largest wait between reconnection attempts. */
  backoffMs?: { first: number; max: number };
}

export async function listenOn(url: string, channel: string, onPayload: (payload: string) => void, options: ListenOptions = {}): Promise<Listener> {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`channel "${channel}" must be lower-case letters, digits and _`);
  const log = options.log ?? ((line: string) => console.error(line));
  const backoff = options.backoffMs ?? { first: 100, max: 5000 };
  let closed = false;
  let client: Client | undefined;
  let retry: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const next = new Client({ connectionString: url });
    // Without a handler, a connection the server ends ('57P01 terminating connection') would crash the process.
    next.on('error', () => undefined);
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload) onPayload(message.payload);
    });
    await next.connect();
    await next.query(`LISTEN ${channel}`);
    next.on('end', () => {
      if (closed || client !== next) return;
      client = undefined;
      options.onDisconnect?.();
      log(`database: the ${channel} listener lost its connection; reconnecting`);
      schedule(backoff.first);
    });
    client = next;
  };
  const schedule = (wait: number) => {
    retry = setTimeout(() => {
      connect().then(
        () => {
          log(`database: the ${channel} listener is connected again`);
          options.onReconnect?.();
        },
        () => {
          if (!closed) schedule(Math.min(backoff.max, wait * 2));
        },
      );
    }, wait);
  };

  await connect();
  return {
    close: async () => {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
