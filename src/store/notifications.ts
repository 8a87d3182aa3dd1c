/** LISTEN on a channel with a connection of its own: job events, cancels and token revocations travel this way between processes. */
import { Client } from 'pg';

export interface Listener {
  close: () => Promise<void>;
}

export async function listenOn(url: string, channel: string, onPayload: (payload: string) => void): Promise<Listener> {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`channel "${channel}" must be lower-case letters, digits and _`);
  const client = new Client({ connectionString: url });
  await client.connect();
  client.on('notification', (message) => {
    if (message.channel === channel && message.payload) onPayload(message.payload);
  });
  await client.query(`LISTEN ${channel}`);
  return { close: () => client.end() };
}
