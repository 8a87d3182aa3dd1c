// A minimal client for the apl-merge API: queries over HTTP, job progress over graphql-ws.
// APL_MERGE_URL (default http://127.0.0.1:4000/graphql) and APL_MERGE_TOKEN (what `apl-merge start` prints).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

export const url = process.env.APL_MERGE_URL ?? 'http://127.0.0.1:4000/graphql';

/** Runs a query or mutation; throws the API's first error (its message and code). */
export async function gql(query, variables = {}, token = process.env.APL_MERGE_TOKEN) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const { data, errors } = await response.json();
  if (errors) throw new Error(`${errors[0].extensions?.code}: ${errors[0].message}`);
  return data;
}

/** Prints a job's events as they happen (from its first, so none is missed) until it ends; returns its last status. */
export async function follow(jobId, token = process.env.APL_MERGE_TOKEN) {
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` } });
  try {
    const subscription = client.iterate({ query: 'subscription($id: ID!) { jobProgress(jobId: $id) { status phase done total message } }', variables: { id: jobId } });
    for await (const { data } of subscription) {
      const e = data.jobProgress;
      console.log(`event ${e.status} ${e.phase} ${e.done}/${e.total} ${e.message}`);
      if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(e.status)) return e.status;
    }
  } finally {
    await client.dispose();
  }
}
