/**
 * Importance: the analyses list with a form to start one, and an analysis's page — per-layer bars
 * of a score, its histogram and top partitions, beside a second analysis when one is chosen.
 */
import { useEffect, useState } from 'react';
import type { Viewer } from './App';
import { Bars, Histogram } from './charts';
import { gql } from './api';

interface AnalysisRow {
  id: string;
  status: string;
  level: string;
  estimator: string;
  model: { name: string };
  task: { name: string };
}

export function AnalysesPage({ viewer }: { viewer: Viewer }) {
  const [rows, setRows] = useState<AnalysisRow[]>([]);
  const [choices, setChoices] = useState<{ models: Array<{ id: string; name: string }>; tasks: Array<{ id: string; name: string }> }>({ models: [], tasks: [] });
  const [input, setInput] = useState({ modelId: '', taskId: '', level: 'ROW', estimator: 'EXACT' });
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    gql<{ analyses: { nodes: AnalysisRow[] }; models: { nodes: Array<{ id: string; name: string }> }; tasks: { nodes: Array<{ id: string; name: string }> } }>(
      '{ analyses(first: 100) { nodes { id status level estimator model { name } task { name } } } models(first: 500, filter: { kind: FINETUNE }, orderBy: { field: NAME, direction: ASC }) { nodes { id name } } tasks(first: 500) { nodes { id name } } }',
    )
      .then((data) => {
        setRows(data.analyses.nodes);
        setChoices({ models: data.models.nodes, tasks: data.tasks.nodes });
      })
      .catch((err: Error) => setError(err.message));
  }, []);
  const start = async () => {
    try {
      const { startAnalysis } = await gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id } } }', { input });
      location.hash = `#/jobs/${startAnalysis.analysis.id}`;
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const select = (key: keyof typeof input, label: string, options: Array<{ value: string; label: string }>) => (
    <label>
      {label}{' '}
      <select id={`analysis-${key}`} value={input[key]} onChange={(e) => setInput({ ...input, [key]: e.target.value })}>
        {options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
      </select>
    </label>
  );
  return (
    <main>
      <h1>Importance analyses</h1>
      {viewer.role !== 'VIEWER' && (
        <form className="toolbar" onSubmit={(e) => { e.preventDefault(); void start(); }}>
          {select('modelId', 'Model', [{ value: '', label: 'choose…' }, ...choices.models.map((m) => ({ value: m.id, label: m.name }))])}
          {select('taskId', 'Task', [{ value: '', label: 'choose…' }, ...choices.tasks.map((t) => ({ value: t.id, label: t.name }))])}
          {select('level', 'Level', ['MODEL', 'LAYER', 'ROW', 'UNIT'].map((v) => ({ value: v, label: v.toLowerCase() })))}
          {select('estimator', 'Estimator', ['EXACT', 'GRADIENT'].map((v) => ({ value: v, label: v.toLowerCase() })))}
          <button type="submit">Start analysis</button>
        </form>
      )}
      {error && <p className="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Model</th><th>Task</th><th>Level</th><th>Estimator</th><th>Status</th></tr></thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.id}>
              <td><a href={a.status === 'COMPLETED' ? `#/analyses/${a.id}` : `#/jobs/${a.id}`}>{a.model.name}</a></td>
              <td>{a.task.name}</td><td>{a.level}</td><td>{a.estimator}</td>
              <td className={`status-${a.status}`}>{a.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}

interface Summary {
  id: string;
  level: string;
  estimator: string;
  model: { name: string };
  task: { name: string };
  layers: Array<{ layer: string; partitions: number; mean: number; spread: number; min: number; max: number; top: Array<{ partition: string; value: number }> }> | null;
  histogram: Array<{ lower: number; upper: number; count: number }> | null;
}

/** The scores a completed analysis holds (exact: loss increase, KL; gradient: signed, absolute). */
const heldScores = (id: string): Promise<string[]> => gql<{ analysis: { scores: string[] | null } }>('query($id: ID!) { analysis(id: $id) { scores } }', { id }).then(({ analysis }) => analysis.scores ?? []);

const scoreLabel = (score: string) => score.toLowerCase().replace('_', ' ');

/**
 * One analysis's charts, of `preferred` when it holds that score, else of the first it holds (a
 * gradient analysis beside an exact one). The scores it holds are read once per analysis (or given,
 * when the page has read them already), not again at every change of score.
 */
function AnalysisPanel({ id, preferred, held: given }: { id: string; preferred: string; held?: string[] }) {
  const [held, setHeld] = useState<string[] | null>(given ?? null);
  const [summary, setSummary] = useState<(Summary & { score: string }) | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setError(null);
    if (given) {
      setHeld(given);
      return;
    }
    setHeld(null);
    heldScores(id).then(setHeld).catch((err: Error) => setError(err.message));
  }, [id, given]);
  const score = held && (held.includes(preferred) ? preferred : held[0]);
  useEffect(() => {
    if (!held) return;
    setSummary(null);
    if (!score) {
      setError('this analysis has no scores yet (it has not completed)');
      return;
    }
    gql<{ analysis: Summary }>('query($id: ID!, $score: ImportanceScore!) { analysis(id: $id) { id level estimator model { name } task { name } layers(score: $score, top: 3) { layer partitions mean spread min max top { partition value } } histogram(score: $score, bins: 20) { lower upper count } } }', { id, score })
      .then(({ analysis }) => setSummary({ ...analysis, score }))
      .catch((err: Error) => setError(err.message));
  }, [id, held, score]);
  if (error) return <section><p className="error" role="alert">{error}</p></section>;
  if (!summary) return <section><p>Loading…</p></section>;
  return (
    <section className="panel">
      <h2>{summary.model.name} on {summary.task.name} ({summary.estimator.toLowerCase()}, {summary.level.toLowerCase()} level)</h2>
      <h3>Mean {scoreLabel(summary.score)} per layer</h3>
      <Bars label="mean importance per layer" rows={(summary.layers ?? []).map((l) => ({ label: l.layer, value: l.mean, note: `${l.partitions} partitions, min ${l.min}, max ${l.max}` }))} />
      <h3>Histogram of partition importance</h3>
      <Histogram label="histogram of partition importance" bins={summary.histogram ?? []} />
      <h3>Top partitions</h3>
      <table>
        <thead><tr><th>Layer</th><th>Partition</th><th>Score</th></tr></thead>
        <tbody>{(summary.layers ?? []).flatMap((l) => l.top.map((t) => <tr key={t.partition}><td>{l.layer}</td><td><code>{t.partition}</code></td><td>{t.value.toPrecision(4)}</td></tr>))}</tbody>
      </table>
    </section>
  );
}

export function AnalysisPage({ id }: { id: string }) {
  const [scores, setScores] = useState<string[] | null>(null);
  const [score, setScore] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [others, setOthers] = useState<AnalysisRow[]>([]);
  const [compare, setCompare] = useState('');
  useEffect(() => {
    // Only the scores this analysis holds are offered; the first (loss increase, or the signed gradient) is shown first.
    setScores(null);
    heldScores(id)
      .then((held) => {
        setScores(held);
        setScore(held[0] ?? '');
      })
      .catch((err: Error) => setError(err.message));
  }, [id]);
  useEffect(() => {
    gql<{ analyses: { nodes: AnalysisRow[] } }>('{ analyses(first: 100, filter: { status: COMPLETED }) { nodes { id status level estimator model { name } task { name } } } }')
      .then(({ analyses }) => setOthers(analyses.nodes.filter((a) => a.id !== id)))
      .catch(() => undefined);
  }, [id]);
  return (
    <main>
      <h1>Importance</h1>
      <div className="toolbar">
        <label>Score <select value={score} onChange={(e) => setScore(e.target.value)}>{(scores ?? []).map((s) => <option key={s} value={s}>{scoreLabel(s)}</option>)}</select></label>
        <label>Compare with <select value={compare} onChange={(e) => setCompare(e.target.value)}><option value="">none</option>{others.map((a) => <option key={a.id} value={a.id}>{a.model.name} · {a.task.name} · {a.estimator.toLowerCase()} · {a.level.toLowerCase()}</option>)}</select></label>
      </div>
      <div className="side-by-side">
        {error && <p className="error" role="alert">{error}</p>}
        {scores && <AnalysisPanel id={id} preferred={score} held={scores} />}
        {scores && compare && <AnalysisPanel id={compare} preferred={score} />}
      </div>
    </main>
  );
}
