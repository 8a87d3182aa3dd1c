/** The workers: who is alive, what each runs now. */
import { useEffect, useState } from 'react';
import { gql } from './api';

interface Worker {
  id: string;
  name: string;
  host: string;
  pid: number;
  backend: string;
  concurrency: number;
  lastSeenAt: string;
  alive: boolean;
  currentJobs: string[];
}

export function WorkersPage() {
  const [workers, setWorkers] = useState<Worker[]>([]);
  const [all, setAll] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const load = () =>
      gql<{ workers: Worker[] }>('query($all: Boolean!) { workers(all: $all) { id name host pid backend concurrency lastSeenAt alive currentJobs } }', { all })
        .then(({ workers }) => setWorkers(workers))
        .catch((err: Error) => setError(err.message));
    void load();
    const timer = setInterval(load, 3000);
    return () => clearInterval(timer);
  }, [all]);
  return (
    <main>
      <h1>Workers</h1>
      <label><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> include stopped and lost ones (last day)</label>
      {error && <p className="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Worker</th><th>Alive</th><th>Backend</th><th>Concurrency</th><th>Running</th><th>Last seen</th></tr></thead>
        <tbody>
          {workers.map((w) => (
            <tr key={w.id}>
              <td>{w.name}</td>
              <td>{w.alive ? 'yes' : 'no'}</td>
              <td>{w.backend}</td>
              <td>{w.concurrency}</td>
              <td>{w.currentJobs.length === 0 ? 'idle' : w.currentJobs.map((id) => <a key={id} href={`#/jobs/${id}`}>{id.slice(0, 8)}</a>)}</td>
              <td>{new Date(w.lastSeenAt).toLocaleTimeString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}
