/** A GraphQL client for tests: queries over HTTP, subscriptions over a real graphql-ws WebSocket. */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface GqlResult<T> {
  data?: T;
  errors?: Array<{ message: string; extensions: { code: string } }>;
}

/** Queries over HTTP, with `token` as the bearer token when given. */
export function graphqlClient(url: string, token?: string) {
  return async <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}): Promise<GqlResult<T>> => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
    return (await response.json()) as GqlResult<T>;
  };
}

/** Subscribes (authenticated with `token`); `done` resolves when the server completes the subscription. */
export function subscribe<T>(url: string, query: string, variables: Record<string, unknown>, onData: (data: T) => void, token?: string): { done: Promise<void>; close: () => Promise<void> } {
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: token ? { authorization: `Bearer ${token}` } : undefined });
  const done = new Promise<void>((resolve, reject) => {
    client.subscribe<T>(
      { query, variables },
      {
        next: (m) => (m.errors ? reject(new Error(JSON.stringify(m.errors))) : onData(m.data as T)),
        error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
        complete: resolve,
      },
    );
  });
  return { done, close: () => client.dispose() as Promise<void> };
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
