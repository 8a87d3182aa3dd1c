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
 * A subscription that resumes: after a dropped connection it subscribes again from after the last
 * event its caller has (`lastEventId`), so no event is lost or repeated.
 */
function resumable<T>(query: string, variables: (after: string | null) => Record<string, unknown>, pick: (data: Record<string, T>) => T, onEvent: (event: T) => void, onError: (message: string) => void, lastEventId: () => string | undefined): () => void {
  let stopped = false;
  let unsubscribe: () => void = () => undefined;
  const start = () => {
    if (stopped) return;
    unsubscribe = wsClient().subscribe<Record<string, T>>(
      { query, variables: variables(lastEventId() ?? null) },
      {
        next: ({ data }) => data && onEvent(pick(data)),
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

const EVENT_FIELDS = 'id status phase done total etaSeconds message';

/** A job's events from after `lastEventId()` (all of them at first), then live, until it ends. */
export function followJob(jobId: string, lastEventId: () => string | undefined, onEvent: (event: JobEvent) => void, onError: (message: string) => void): () => void {
  return resumable<JobEvent>(`subscription($id: ID!, $after: ID) { jobProgress(jobId: $id, afterEventId: $after) { ${EVENT_FIELDS} } }`, (after) => ({ id: jobId, after }), (d) => d.jobProgress, onEvent, onError, lastEventId);
}

/** Status changes of every job, live (from after `lastEventId()` when resuming). */
export function followStatuses(lastEventId: () => string | undefined, onEvent: (event: JobEvent & { jobId: string }) => void, onError: (message: string) => void): () => void {
  return resumable<JobEvent & { jobId: string }>(`subscription($after: ID) { jobStatuses(afterEventId: $after) { jobId ${EVENT_FIELDS} } }`, (after) => ({ after }), (d) => d.jobStatuses, onEvent, onError, lastEventId);
}
