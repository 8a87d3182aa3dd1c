/** The models table (search, filter, pages) and a model's page (checkpoint, tensors, scores, lineage). */
import { useEffect, useState } from 'react';
import { gql } from './api';

interface ModelRow {
  id: string;
  name: string;
  kind: string;
  architecture: string;
  tags: string[];
  createdBy: string | null;
  createdAt: string;
}

interface Page {
  totalCount: number;
  nodes: ModelRow[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const PAGE_SIZE = 50;

export function ModelsPage() {
  const [search, setSearch] = useState('');
  const [kind, setKind] = useState('');
  const [baseId, setBaseId] = useState('');
  const [tags, setTags] = useState('');
  const [createdBy, setCreatedBy] = useState('');
  const [bases, setBases] = useState<Array<{ id: string; name: string }>>([]);
  useEffect(() => {
    gql<{ models: { nodes: Array<{ id: string; name: string }> } }>('{ models(first: 500, filter: { kind: BASE }, orderBy: { field: NAME, direction: ASC }) { nodes { id name } } }')
      .then(({ models }) => setBases(models.nodes))
      .catch(() => undefined);
  }, []);
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<string | null>(null);
  const after = cursors[cursors.length - 1];
  useEffect(() => {
    const tagList = tags.split(',').map((t) => t.trim()).filter(Boolean);
    const filter = { ...(search ? { nameContains: search } : {}), ...(kind ? { kind } : {}), ...(baseId ? { baseId } : {}), ...(tagList.length ? { tags: tagList } : {}), ...(createdBy ? { createdBy } : {}) };
    gql<{ models: Page }>('query($first: Int!, $after: String, $filter: ModelFilterInput) { models(first: $first, after: $after, filter: $filter) { totalCount nodes { id name kind architecture tags createdBy createdAt } pageInfo { hasNextPage endCursor } } }', { first: PAGE_SIZE, after, filter })
      .then(({ models }) => {
        setPage(models);
        setError(null);
      })
      .catch((err: Error) => setError(err.message));
  }, [search, kind, baseId, tags, createdBy, after]);
  const restart = () => setCursors([null]);
  return (
    <main>
      <h1>Models</h1>
      <div className="toolbar">
        <label>
          Search <input type="search" value={search} onChange={(e) => { setSearch(e.target.value); restart(); }} placeholder="name contains…" />
        </label>
        <label>
          Kind{' '}
          <select value={kind} onChange={(e) => { setKind(e.target.value); restart(); }}>
            <option value="">any</option>
            <option value="BASE">base</option>
            <option value="FINETUNE">fine-tune</option>
            <option value="MERGE">merge</option>
          </select>
        </label>
        <label>
          Below{' '}
          <select value={baseId} onChange={(e) => { setBaseId(e.target.value); restart(); }}>
            <option value="">any base</option>
            {bases.map((b) => <option key={b.id} value={b.id}>{b.name}</option>)}
          </select>
        </label>
        <label>
          Tags <input value={tags} onChange={(e) => { setTags(e.target.value); restart(); }} placeholder="a, b" size={10} />
        </label>
        <label>
          Created by <input value={createdBy} onChange={(e) => { setCreatedBy(e.target.value); restart(); }} placeholder="token name" size={10} />
        </label>
        {page && <span aria-live="polite">{page.totalCount} model(s)</span>}
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <table>
        <thead>
          <tr><th>Name</th><th>Kind</th><th>Architecture</th><th>Tags</th><th>Created by</th><th>Registered</th></tr>
        </thead>
        <tbody>
          {page?.nodes.map((m) => (
            <tr key={m.id}>
              <td><a href={`#/models/${m.id}`}>{m.name}</a></td>
              <td>{m.kind}</td>
              <td>{m.architecture}</td>
              <td>{m.tags.join(', ')}</td>
              <td>{m.createdBy ?? '—'}</td>
              <td>{new Date(m.createdAt).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="toolbar">
        <button disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <button disabled={!page?.pageInfo.hasNextPage} onClick={() => setCursors([...cursors, page!.pageInfo.endCursor])}>Next page</button>
      </div>
    </main>
  );
}

interface ModelDetail {
  id: string;
  name: string;
  kind: string;
  architecture: string;
  description: string;
  checkpoint: { uri: string; sha256: string; dtype: string; parameterCount: number; tensorCount: number; modelCard: string | null; tensors: { totalCount: number; nodes: Array<{ name: string; dtype: string; shape: number[]; file: string }> } };
  parents: Array<{ relation: string; weight: number | null; model: { id: string; name: string; evaluations: { nodes: Array<{ split: string; value: number; task: { name: string } }> } } }>;
  children: Array<{ relation: string; weight: number | null; model: { id: string; name: string } }>;
  evaluations: { nodes: Array<{ split: string; value: number; task: { name: string } }> };
  ancestors: Array<{ id: string; name: string; kind: string }>;
  analyses: { nodes: Array<{ id: string; status: string; level: string; estimator: string; task: { name: string } }> };
  merges: { nodes: Array<{ id: string; status: string; method: string; outputName: string | null }> };
}

export function ModelPage({ id }: { id: string }) {
  const [model, setModel] = useState<ModelDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    gql<{ model: ModelDetail }>(
      'query($id: ID!) { model(id: $id) { id name kind architecture description checkpoint { uri sha256 dtype parameterCount tensorCount modelCard tensors(first: 200) { totalCount nodes { name dtype shape file } } } parents { relation weight model { id name evaluations(first: 100) { nodes { split value task { name } } } } } children { relation weight model { id name } } evaluations(first: 100) { nodes { split value task { name } } } ancestors(depth: 64) { id name kind } analyses(first: 20) { nodes { id status level estimator task { name } } } merges(first: 20) { nodes { id status method outputName } } } }',
      { id },
    )
      .then(({ model }) => setModel(model))
      .catch((err: Error) => setError(err.message));
  }, [id]);
  if (error) return <main><p className="error" role="alert">{error}</p></main>;
  if (!model) return <main><p>Loading…</p></main>;
  const links = (list: Array<{ relation: string; weight: number | null; model: { id: string; name: string } }>) => list.map((l) => <li key={l.model.id}><a href={`#/models/${l.model.id}`}>{l.model.name}</a> ({l.relation.toLowerCase()}{l.weight !== null ? `, weight ${l.weight}` : ''})</li>);
  return (
    <main>
      <h1>{model.name}</h1>
      <dl>
        <dt>Kind</dt><dd>{model.kind}</dd>
        <dt>Architecture</dt><dd>{model.architecture}</dd>
        <dt>Checkpoint</dt><dd><code>{model.checkpoint.uri}</code></dd>
        <dt>sha256</dt><dd><code>{model.checkpoint.sha256}</code></dd>
        <dt>Parameters</dt><dd>{model.checkpoint.parameterCount.toLocaleString()} in {model.checkpoint.tensorCount} tensors ({model.checkpoint.dtype})</dd>
      </dl>
      <h2>Lineage</h2>
      <p>
        Lineage graph:{' '}
        {(model.kind === 'BASE' ? [{ id: model.id, name: model.name }] : model.ancestors.filter((a) => a.kind === 'BASE')).map((b) => (
          <a key={b.id} href={`#/lineage/${b.id}`}>below {b.name}</a>
        ))}
      </p>
      <h3>Parents</h3>
      <ul>{links(model.parents)}</ul>
      <h3>Children</h3>
      <ul>{links(model.children)}</ul>
      <h2>Evaluations</h2>
      <table>
        <thead>
          <tr><th>Task</th><th>Split</th><th>{model.name}</th>{model.parents.map((p) => <th key={p.model.id}>{p.model.name} ({p.relation.toLowerCase()})</th>)}</tr>
        </thead>
        <tbody>
          {model.evaluations.nodes.map((e) => (
            <tr key={`${e.task.name}/${e.split}`}>
              <td>{e.task.name}</td><td>{e.split}</td><td>{e.value.toFixed(3)}</td>
              {model.parents.map((p) => {
                const theirs = p.model.evaluations.nodes.find((x) => x.task.name === e.task.name && x.split === e.split);
                return <td key={p.model.id}>{theirs ? theirs.value.toFixed(3) : '—'}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Analyses</h2>
      <ul>
        {model.analyses.nodes.map((a) => (
          <li key={a.id}><a href={a.status === 'COMPLETED' ? `#/analyses/${a.id}` : `#/jobs/${a.id}`}>{a.estimator.toLowerCase()} importance on {a.task.name} ({a.level.toLowerCase()})</a> — {a.status}</li>
        ))}
      </ul>
      <h2>Merges</h2>
      <ul>
        {model.merges.nodes.map((m) => (
          <li key={m.id}><a href={`#/jobs/${m.id}`}>{m.method} → {m.outputName ?? m.id.slice(0, 8)}</a> — {m.status}</li>
        ))}
      </ul>
      <h2>Tensors ({model.checkpoint.tensors.totalCount})</h2>
      <table>
        <thead><tr><th>Name</th><th>dtype</th><th>Shape</th><th>File</th></tr></thead>
        <tbody>
          {model.checkpoint.tensors.nodes.map((t) => (
            <tr key={t.name}><td><code>{t.name}</code></td><td>{t.dtype}</td><td>[{t.shape.join(', ')}]</td><td>{t.file}</td></tr>
          ))}
        </tbody>
      </table>
      {model.checkpoint.modelCard && (
        <>
          <h2>Model card</h2>
          <pre className="log">{model.checkpoint.modelCard}</pre>
        </>
      )}
    </main>
  );
}
