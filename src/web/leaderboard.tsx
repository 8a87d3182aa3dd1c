/** A base's leaderboard: every model below it, its score per task beside the best fine-tune's, sortable, with a chart. */
import { useEffect, useState } from 'react';
import { Bars } from './charts';
import { gql } from './api';

interface Row {
  model: { id: string; name: string; kind: string };
  average: number;
  normalizedAverage: number | null;
  scores: Array<{ task: { name: string }; value: number; bestFineTune: number | null; normalized: number | null }>;
}

export function LeaderboardPage({ baseId }: { baseId: string }) {
  const [split, setSplit] = useState('test');
  const [rows, setRows] = useState<Row[]>([]);
  const [sort, setSort] = useState<{ key: string; descending: boolean }>({ key: 'normalized', descending: true });
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    gql<{ leaderboard: Row[] }>('query($id: ID!, $split: String!) { leaderboard(baseId: $id, split: $split) { model { id name kind } average normalizedAverage scores { task { name } value bestFineTune normalized } } }', { id: baseId, split })
      .then(({ leaderboard }) => setRows(leaderboard))
      .catch((err: Error) => setError(err.message));
  }, [baseId, split]);
  const tasks = [...new Set(rows.flatMap((r) => r.scores.map((s) => s.task.name)))].sort();
  const keyOf = (r: Row): number => {
    if (sort.key === 'normalized') return r.normalizedAverage ?? -Infinity;
    if (sort.key === 'average') return r.average;
    return r.scores.find((s) => s.task.name === sort.key)?.value ?? -Infinity;
  };
  const sorted = [...rows].sort((a, b) => (sort.descending ? keyOf(b) - keyOf(a) : keyOf(a) - keyOf(b)));
  const header = (key: string, label: string) => (
    <th key={key} aria-sort={sort.key === key ? (sort.descending ? 'descending' : 'ascending') : 'none'}>
      <button onClick={() => setSort({ key, descending: sort.key === key ? !sort.descending : true })}>{label}</button>
    </th>
  );
  return (
    <main>
      <h1>Leaderboard</h1>
      <div className="toolbar">
        <label>Split <select value={split} onChange={(e) => setSplit(e.target.value)}><option value="test">test</option><option value="ood">out of domain</option></select></label>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Model</th><th>Kind</th>{header('normalized', 'Normalised')}{header('average', 'Average')}{tasks.map((t) => header(t, t))}</tr></thead>
        <tbody>
          {sorted.map((r) => (
            <tr key={r.model.id}>
              <td><a href={`#/models/${r.model.id}`}>{r.model.name}</a></td>
              <td>{r.model.kind}</td>
              <td>{r.normalizedAverage === null ? '—' : r.normalizedAverage.toFixed(3)}</td>
              <td>{r.average.toFixed(3)}</td>
              {tasks.map((t) => {
                const s = r.scores.find((x) => x.task.name === t);
                return <td key={t}>{s ? `${s.value.toFixed(3)}${s.bestFineTune !== null ? ` / ${s.bestFineTune.toFixed(3)}` : ''}` : '—'}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Normalised average</h2>
      <Bars label="normalised average per model" rows={sorted.filter((r) => r.normalizedAverage !== null).map((r) => ({ label: r.model.name, value: r.normalizedAverage! }))} />
      <p><small>Each cell: the model's accuracy / the best fine-tune's on that task. Normalised: each task's score over the best fine-tune's, averaged.</small></p>
    </main>
  );
}
