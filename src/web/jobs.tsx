/** Merges as a list that refreshes itself, and a job's live page: progress, phase, ETA, events, cancel and retry. */
import { useEffect, useRef, useState } from 'react';
import type { Viewer } from './App';
import { followJob, gql, type JobEvent } from './api';

interface MergeRow {
  id: string;
  method: string;
  status: string;
  outputName: string | null;
  createdBy: string | null;
  createdAt: string;
}

export function JobsPage() {
  const [merges, setMerges] = useState<MergeRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    const load = () =>
      gql<{ merges: { nodes: MergeRow[] } }>('{ merges(first: 50) { nodes { id method status outputName createdBy createdAt } } }')
        .then(({ merges }) => !stopped && setMerges(merges.nodes))
        .catch((err: Error) => !stopped && setError(err.message));
    void load();
    const timer = setInterval(load, 2000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <main>
      <h1>Jobs</h1>
      {error && <p className="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Merge</th><th>Method</th><th>Status</th><th>Requested by</th><th>Queued</th></tr></thead>
        <tbody>
          {merges.map((m) => (
            <tr key={m.id}>
              <td><a href={`#/jobs/${m.id}`}>{m.outputName ?? m.id}</a></td>
              <td>{m.method}</td>
              <td className={`status-${m.status}`}>{m.status}</td>
              <td>{m.createdBy ?? '—'}</td>
              <td>{new Date(m.createdAt).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

export function JobPage({ id, viewer }: { id: string; viewer: Viewer }) {
  const [events, setEvents] = useState<JobEvent[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const last = useRef<string | undefined>(undefined);
  useEffect(() => {
    last.current = undefined;
    setEvents([]);
    return followJob(
      id,
      () => last.current,
      (event) => {
        // Resumed streams start after the last event seen: nothing is repeated.
        if (last.current !== undefined && BigInt(event.id) <= BigInt(last.current)) return;
        last.current = event.id;
        setEvents((list) => [...list, event]);
        setProblem(null);
      },
      (message) => setProblem(`${message} (reconnecting…)`),
    );
  }, [id, generation]);
  const latest = events[events.length - 1];
  const status = [...events].reverse().find((e) => e.phase === 'status')?.status ?? latest?.status;
  const [output, setOutput] = useState<{ id: string; name: string } | null>(null);
  useEffect(() => {
    if (status !== 'COMPLETED') return;
    gql<{ node: { outputModel?: { id: string; name: string } | null } }>('query($id: ID!) { node(id: $id) { ... on Merge { outputModel { id name } } } }', { id })
      .then(({ node }) => setOutput(node.outputModel ?? null))
      .catch(() => undefined);
  }, [status, id]);
  const act = async (mutation: 'cancelJob' | 'retryJob') => {
    try {
      await gql(`mutation($id: ID!) { ${mutation}(id: $id) { id status } }`, { id });
      if (mutation === 'retryJob') setGeneration((g) => g + 1);
    } catch (err) {
      setProblem((err as Error).message);
    }
  };
  const mayAct = viewer.role !== 'VIEWER';
  return (
    <main>
      <h1>Job {id}</h1>
      <p>
        Status: <strong className={`status-${status}`} data-testid="job-status">{status ?? '…'}</strong>
        {latest && !FINAL.includes(latest.status) && latest.phase !== 'status' && (
          <>
            {' '}— {latest.phase} <progress max={Math.max(latest.total, 1)} value={latest.done} aria-label={`${latest.phase} progress`} /> {latest.done}/{latest.total}
            {latest.etaSeconds !== null && ` (about ${latest.etaSeconds.toFixed(1)} s left)`}
          </>
        )}
      </p>
      {output && (
        <p>
          Merged model: <a href={`#/models/${output.id}`}>{output.name}</a>
        </p>
      )}
      {mayAct && (
        <div className="toolbar">
          {status && !FINAL.includes(status) && <button onClick={() => act('cancelJob')}>Cancel</button>}
          {(status === 'FAILED' || status === 'CANCELLED') && <button onClick={() => act('retryJob')}>Retry</button>}
        </div>
      )}
      {problem && <p className="error" role="alert">{problem}</p>}
      <h2>Events</h2>
      <ol className="log" data-testid="events">
        {events.map((e) => (
          <li key={e.id}>
            {e.status} {e.phase} {e.done}/{e.total} {e.message}
          </li>
        ))}
      </ol>
    </main>
  );
}
