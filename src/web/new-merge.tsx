/**
 * The new-merge form, driven by the `methods` query: each parameter of the chosen method gets a
 * field of its type with its default and description; models take their per-model parameters and,
 * for the data-aware methods (those with a per-model probe), a probe task — for APL, or a completed analysis. A server error that names a field is shown next
 * to it. On success the job's live page opens.
 */
import { useEffect, useState } from 'react';
import { ApiError, gql } from './api';

interface Parameter {
  name: string;
  type: 'number' | 'boolean' | 'string';
  default: unknown;
  description: string;
  min: number | null;
  max: number | null;
  choices: string[] | null;
}

interface Method {
  name: string;
  prettyName: string;
  reference: string;
  needsBase: boolean;
  globalParameters: Parameter[];
  modelParameters: Parameter[];
}

interface Choice {
  id: string;
  name: string;
}

type Values = Record<string, string>;

interface ModelRow {
  modelId: string;
  values: Values;
  probeTaskId: string;
  analysisId: string;
}

/** The entered values as the API's parameters: empty fields are left to the method's default. */
function parametersOf(defs: Parameter[], values: Values): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const def of defs) {
    const raw = values[def.name];
    if (raw === undefined || raw === '') continue;
    out[def.name] = def.type === 'number' ? Number(raw) : def.type === 'boolean' ? raw === 'true' : raw;
  }
  return out;
}

function ParameterField({ def, value, onChange, id, error }: { def: Parameter; value: string; onChange: (v: string) => void; id: string; error?: string }) {
  const hint = `${def.description}${def.default !== undefined && def.default !== null ? ` (default ${JSON.stringify(def.default)})` : ' (required)'}`;
  let input;
  if (def.type === 'boolean') {
    input = (
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">default</option>
        <option value="true">true</option>
        <option value="false">false</option>
      </select>
    );
  } else if (def.choices) {
    input = (
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">default</option>
        {def.choices.map((c) => <option key={c} value={c}>{c}</option>)}
      </select>
    );
  } else {
    input = <input id={id} type={def.type === 'number' ? 'number' : 'text'} step="any" min={def.min ?? undefined} max={def.max ?? undefined} value={value} placeholder={def.default !== undefined && def.default !== null ? String(def.default) : ''} onChange={(e) => onChange(e.target.value)} />;
  }
  return (
    <div className="field">
      <label htmlFor={id}>{def.name}</label> {input} <small>{hint}</small>
      {error && <div className="error" role="alert">{error}</div>}
    </div>
  );
}

export function NewMergePage() {
  const [methods, setMethods] = useState<Method[]>([]);
  const [models, setModels] = useState<Choice[]>([]);
  const [tasks, setTasks] = useState<Choice[]>([]);
  const [method, setMethod] = useState('ties');
  const [baseId, setBaseId] = useState('');
  const [name, setName] = useState('');
  const [seed, setSeed] = useState('');
  const [globals, setGlobals] = useState<Values>({});
  const [rows, setRows] = useState<ModelRow[]>([{ modelId: '', values: {}, probeTaskId: '', analysisId: '' }]);
  const [error, setError] = useState<{ field: string | null; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    gql<{ methods: Method[]; models: { nodes: Choice[] }; tasks: { nodes: Choice[] } }>(
      '{ methods { name prettyName reference needsBase globalParameters { name type default description min max choices } modelParameters { name type default description min max choices } } models(first: 500, orderBy: { field: NAME, direction: ASC }) { nodes { id name } } tasks(first: 500) { nodes { id name } } }',
    )
      .then((data) => {
        setMethods(data.methods);
        setModels(data.models.nodes);
        setTasks(data.tasks.nodes);
      })
      .catch((err: Error) => setError({ field: null, message: err.message }));
  }, []);
  const chosen = methods.find((m) => m.name === method);
  // Data-aware methods read each model's probe split: offer the registry's tasks for it.
  const readsProbe = chosen?.modelParameters.some((def) => def.name === 'probe') ?? false;
  const fieldError = (field: string) => (error && error.field === field ? error.message : undefined);
  const submit = async () => {
    if (!chosen) return;
    setBusy(true);
    setError(null);
    try {
      const input = {
        method,
        ...(name ? { name } : {}),
        ...(baseId ? { baseModelId: baseId } : {}),
        ...(seed ? { seed: Number(seed) } : {}),
        parameters: parametersOf(chosen.globalParameters, globals),
        models: rows.map((row) => ({
          modelId: row.modelId,
          parameters: parametersOf(chosen.modelParameters, row.values),
          ...(row.probeTaskId ? { probeTaskId: row.probeTaskId } : {}),
          ...(row.analysisId ? { analysisId: row.analysisId } : {}),
        })),
      };
      const { startMerge } = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', { input });
      location.hash = `#/jobs/${startMerge.merge.id}`;
    } catch (err) {
      const message = (err as Error).message;
      // "models[0].probeTaskId: …", "baseModelId: …", "parameters.density: …": the field it names.
      const path = /\b(models\[\d+\](?:\.[A-Za-z_]+)?|parameters\.[A-Za-z_]+|baseModelId|name|seed)(?:\.[A-Za-z_.]+)?:/.exec(message)?.[1];
      const named = path ?? (err instanceof ApiError ? err.argument : undefined) ?? null;
      setError({ field: named, message });
    } finally {
      setBusy(false);
    }
  };
  const setRow = (i: number, change: Partial<ModelRow>) => setRows(rows.map((row, j) => (j === i ? { ...row, ...change } : row)));
  return (
    <main>
      <h1>New merge</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <div className="field">
          <label htmlFor="method">Method</label>{' '}
          <select id="method" value={method} onChange={(e) => { setMethod(e.target.value); setGlobals({}); }}>
            {methods.map((m) => <option key={m.name} value={m.name}>{m.prettyName} ({m.name})</option>)}
          </select>{' '}
          {chosen && <small><a href={chosen.reference}>{chosen.reference}</a>{chosen.needsBase ? ' — needs a base model' : ''}</small>}
        </div>
        <div className="field">
          <label htmlFor="base">Base model</label>{' '}
          <select id="base" value={baseId} onChange={(e) => setBaseId(e.target.value)}>
            <option value="">none</option>
            {models.map((m) => <option key={m.id} value={m.id}>{m.name}</option>)}
          </select>
          {fieldError('baseModelId') && <div className="error" role="alert">{fieldError('baseModelId')}</div>}
        </div>
        <div className="field">
          <label htmlFor="name">Output name</label> <input id="name" value={name} onChange={(e) => setName(e.target.value)} placeholder="merge-…" />
          {fieldError('name') && <div className="error" role="alert">{fieldError('name')}</div>}
        </div>
        <div className="field">
          <label htmlFor="seed">Seed</label> <input id="seed" type="number" min={0} step={1} value={seed} onChange={(e) => setSeed(e.target.value)} placeholder="0" />
        </div>
        {chosen && chosen.globalParameters.length > 0 && (
          <fieldset>
            <legend>Parameters</legend>
            {chosen.globalParameters.map((def) => (
              <ParameterField key={def.name} id={`global-${def.name}`} def={def} value={globals[def.name] ?? ''} onChange={(v) => setGlobals({ ...globals, [def.name]: v })} error={fieldError(`parameters.${def.name}`)} />
            ))}
          </fieldset>
        )}
        {rows.map((row, i) => (
          <fieldset key={i}>
            <legend>Model {i + 1}</legend>
            <div className="field">
              <label htmlFor={`model-${i}`}>Model</label>{' '}
              <select id={`model-${i}`} value={row.modelId} onChange={(e) => setRow(i, { modelId: e.target.value })}>
                <option value="">choose…</option>
                {models.map((m) => <option key={m.id} value={m.id}>{m.name}</option>)}
              </select>{' '}
              <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))} disabled={rows.length === 1}>Remove</button>
              {(fieldError(`models[${i}]`) ?? fieldError(`models[${i}].parameters`)) && <div className="error" role="alert">{fieldError(`models[${i}]`) ?? fieldError(`models[${i}].parameters`)}</div>}
            </div>
            {chosen?.modelParameters.map((def) => (
              <ParameterField key={def.name} id={`model-${i}-${def.name}`} def={def} value={row.values[def.name] ?? ''} onChange={(v) => setRow(i, { values: { ...row.values, [def.name]: v } })} error={fieldError(`models[${i}].${def.name}`)} />
            ))}
            {readsProbe && (
              <div className="field">
                <label htmlFor={`probe-${i}`}>Probe task</label>{' '}
                <select id={`probe-${i}`} value={row.probeTaskId} onChange={(e) => setRow(i, { probeTaskId: e.target.value })}>
                  <option value="">none</option>
                  {tasks.map((t) => <option key={t.id} value={t.id}>{t.name}</option>)}
                </select>{' '}
                {method === 'apl' && (
                  <>
                    <label htmlFor={`analysis-${i}`}>or analysis id</label> <input id={`analysis-${i}`} value={row.analysisId} onChange={(e) => setRow(i, { analysisId: e.target.value })} />
                  </>
                )}
                {(fieldError(`models[${i}].probeTaskId`) ?? fieldError(`models[${i}].analysisId`)) && <div className="error" role="alert">{fieldError(`models[${i}].probeTaskId`) ?? fieldError(`models[${i}].analysisId`)}</div>}
              </div>
            )}
          </fieldset>
        ))}
        <div className="toolbar">
          <button type="button" onClick={() => setRows([...rows, { modelId: '', values: {}, probeTaskId: '', analysisId: '' }])}>Add a model</button>
          <button type="submit" disabled={busy}>Start merge</button>
        </div>
        {error && !['baseModelId', 'name'].includes(error.field ?? '') && !(error.field ?? '').startsWith('models[') && !(error.field ?? '').startsWith('parameters.') && <p className="error" role="alert">{error.message}</p>}
      </form>
    </main>
  );
}
