/** The dashboard's only way to the server: GraphQL over HTTP, and job events over graphql-ws. */
import { createClient, type Client } from 'graphql-ws';

const TOKEN_KEY = 'apl-merge-token';

export function storedToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** `#token=…` (what `apl-merge start` prints) signs this browser in; the fragment is then removed. */
export function takeTokenFromUrl(): void {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token');
  if (token) {
    storeToken(token);
    history.replaceState(null, '', `${location.pathname}#/models`);
  }
}

export class ApiError extends Error {
  constructor(message: string, readonly code: string | undefined, readonly argument: string | undefined) {
    super(message);
  }
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${storedToken() ?? ''}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Array<{ message: string; extensions?: { code?: string; argument?: string } }> };
  if (body.errors?.length) throw new ApiError(body.errors[0].message, body.errors[0].extensions?.code, body.errors[0].extensions?.argument);
  return body.data as T;
}

let client: Client | undefined;

function wsClient(): Client {
  client ??= createClient({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`, connectionParams: () => ({ authorization: `Bearer ${storedToken() ?? ''}` }), retryAttempts: Infinity });
  return client;
}

export interface JobEvent {
  id: string;
  status: string;
  phase: string;
  done: number;
  total: number;
  etaSeconds: number | null;
  message: string;
}

/**
 * A job's events from after `afterEventId` (all of them without one), then live: after a dropped
 * connection graphql-ws subscribes again and `onEvent`'s caller passes the last id it has, so no
 * event is lost or repeated.
 */
export function followJob(jobId: string, lastEventId: () => string | undefined, onEvent: (event: JobEvent) => void, onError: (message: string) => void): () => void {
  let stopped = false;
  let unsubscribe: () => void = () => undefined;
  const start = () => {
    if (stopped) return;
    unsubscribe = wsClient().subscribe<{ jobProgress: JobEvent }>(
      { query: 'subscription($id: ID!, $after: ID) { jobProgress(jobId: $id, afterEventId: $after) { id status phase done total etaSeconds message } }', variables: { id: jobId, after: lastEventId() ?? null } },
      {
        next: ({ data }) => data && onEvent(data.jobProgress),
        error: (err) => {
          onError(err instanceof Error ? err.message : Array.isArray(err) ? String((err[0] as { message?: string }).message) : 'connection lost');
          setTimeout(start, 1000);
        },
        complete: () => undefined,
      },
    );
  };
  start();
  return () => {
    stopped = true;
    unsubscribe();
  };
}
