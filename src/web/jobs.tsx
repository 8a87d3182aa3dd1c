/** Every job as a live list, and a job's live page: progress, phase, ETA, events, cancel and retry. */
import { useEffect, useRef, useState } from 'react';
import type { Viewer } from './App';
import { followJob, followStatuses, gql, type JobEvent } from './api';

interface JobRow {
  id: string;
  kind: 'merge' | 'analysis' | 'evaluation';
  what: string;
  status: string;
  createdBy: string | null;
  createdAt: string;
}

const JOBS = `{
  merges(first: 50) { nodes { id method status outputName createdBy createdAt } }
  analyses(first: 50) { nodes { id status estimator level createdBy createdAt model { name } task { name } } }
  evaluationRuns(first: 50) { nodes { id status createdBy createdAt model { name } } }
}`;

interface JobsAnswer {
  merges: { nodes: Array<{ id: string; method: string; status: string; outputName: string | null; createdBy: string | null; createdAt: string }> };
  analyses: { nodes: Array<{ id: string; status: string; estimator: string; level: string; createdBy: string | null; createdAt: string; model: { name: string }; task: { name: string } }> };
  evaluationRuns: { nodes: Array<{ id: string; status: string; createdBy: string | null; createdAt: string; model: { name: string } }> };
}

function rowsOf(answer: JobsAnswer): JobRow[] {
  return [
    ...answer.merges.nodes.map((m) => ({ id: m.id, kind: 'merge' as const, what: `${m.method} → ${m.outputName ?? m.id.slice(0, 8)}`, status: m.status, createdBy: m.createdBy, createdAt: m.createdAt })),
    ...answer.analyses.nodes.map((a) => ({ id: a.id, kind: 'analysis' as const, what: `${a.estimator.toLowerCase()} importance of ${a.model.name} on ${a.task.name} (${a.level.toLowerCase()})`, status: a.status, createdBy: a.createdBy, createdAt: a.createdAt })),
    ...answer.evaluationRuns.nodes.map((e) => ({ id: e.id, kind: 'evaluation' as const, what: `evaluation of ${e.model.name}`, status: e.status, createdBy: e.createdBy, createdAt: e.createdAt })),
  ].sort((x, y) => y.createdAt.localeCompare(x.createdAt));
}

/** Every job, newest first; status changes stream in (jobStatuses), a job not listed yet reloads the list. */
export function JobsPage() {
  const [jobs, setJobs] = useState<JobRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    let known = new Set<string>();
    const load = () =>
      gql<JobsAnswer>(JOBS)
        .then((answer) => {
          if (stopped) return;
          const rows = rowsOf(answer);
          known = new Set(rows.map((r) => r.id));
          setJobs(rows);
        })
        .catch((err: Error) => !stopped && setError(err.message));
    void load();
    let last: string | undefined;
    const stop = followStatuses(() => last, (event) => {
      last = event.id;
      if (!known.has(event.jobId)) void load();
      else setJobs((rows) => rows.map((r) => (r.id === event.jobId ? { ...r, status: event.status } : r)));
    }, (message) => setError(`${message} (reconnecting…)`));
    return () => {
      stopped = true;
      stop();
    };
  }, []);
  return (
    <main>
      <h1>Jobs</h1>
      {error && <p className="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Job</th><th>Kind</th><th>Status</th><th>Requested by</th><th>Queued</th></tr></thead>
        <tbody>
          {jobs.map((j) => (
            <tr key={j.id}>
              <td><a href={`#/jobs/${j.id}`}>{j.what}</a></td>
              <td>{j.kind}</td>
              <td className={`status-${j.status}`} data-testid={`status-${j.id}`}>{j.status}</td>
              <td>{j.createdBy ?? '—'}</td>
              <td>{new Date(j.createdAt).toLocaleString()}</td>
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
