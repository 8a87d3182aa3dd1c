/**
 * The lineage explorer: the DAG below a base, laid out by dagre (ranks top to bottom), drawn as
 * SVG with zoom (wheel, buttons) and pan (drag); edges show their relation (colour) and weight.
 * Selecting a model highlights its ancestors and descendants; its page is a link away.
 */
import dagre from '@dagrejs/dagre';
import { useEffect, useMemo, useRef, useState } from 'react';
import { gql } from './api';

interface LineageNode {
  id: string;
  name: string;
  kind: string;
  depth: number;
}

interface LineageEdge {
  parentId: string;
  childId: string;
  relation: string;
  weight: number | null;
}

const NODE_WIDTH = 150;
const NODE_HEIGHT = 34;
const RELATION_COLOUR: Record<string, string> = { FINETUNE: '#57606a', MERGE: '#0a58ca', MERGE_BASE: '#bf8700' };

/** Every node reachable from `start` along `next`. */
function reachable(start: string, next: Map<string, string[]>): Set<string> {
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length > 0) {
    for (const n of next.get(stack.pop()!) ?? []) {
      if (!seen.has(n)) {
        seen.add(n);
        stack.push(n);
      }
    }
  }
  return seen;
}

export function BasesPage() {
  const [bases, setBases] = useState<Array<{ id: string; name: string }>>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    gql<{ models: { nodes: Array<{ id: string; name: string }> } }>('{ models(first: 500, filter: { kind: BASE }, orderBy: { field: NAME, direction: ASC }) { nodes { id name } } }')
      .then(({ models }) => setBases(models.nodes))
      .catch((err: Error) => setError(err.message));
  }, []);
  return (
    <main>
      <h1>Lineage</h1>
      {error && <p className="error" role="alert">{error}</p>}
      <p>The graph below a base model:</p>
      <ul>{bases.map((b) => <li key={b.id}><a href={`#/lineage/${b.id}`}>{b.name}</a> · <a href={`#/leaderboard/${b.id}`}>leaderboard</a></li>)}</ul>
    </main>
  );
}

export function LineagePage({ baseId }: { baseId: string }) {
  const [graph, setGraph] = useState<{ nodes: LineageNode[]; edges: LineageEdge[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [view, setView] = useState({ x: 0, y: 0, scale: 1 });
  const drag = useRef<{ x: number; y: number } | null>(null);
  useEffect(() => {
    gql<{ lineage: { nodes: LineageNode[]; edges: LineageEdge[] } }>('query($id: ID!) { lineage(baseId: $id) { nodes { id name kind depth } edges { parentId childId relation weight } } }', { id: baseId })
      .then(({ lineage }) => setGraph(lineage))
      .catch((err: Error) => setError(err.message));
  }, [baseId]);
  const layout = useMemo(() => {
    if (!graph) return null;
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 56, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of graph.nodes) g.setNode(n.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
    for (const e of graph.edges) g.setEdge(e.parentId, e.childId);
    dagre.layout(g);
    const size = g.graph();
    return { g, width: size.width ?? 0, height: size.height ?? 0 };
  }, [graph]);
  const related = useMemo(() => {
    if (!graph || !selected) return { ancestors: new Set<string>(), descendants: new Set<string>() };
    const up = new Map<string, string[]>();
    const down = new Map<string, string[]>();
    for (const e of graph.edges) {
      up.set(e.childId, [...(up.get(e.childId) ?? []), e.parentId]);
      down.set(e.parentId, [...(down.get(e.parentId) ?? []), e.childId]);
    }
    return { ancestors: reachable(selected, up), descendants: reachable(selected, down) };
  }, [graph, selected]);
  if (error) return <main><p className="error" role="alert">{error}</p></main>;
  if (!graph || !layout) return <main><p>Loading…</p></main>;
  const zoom = (factor: number) => setView((v) => ({ ...v, scale: Math.min(4, Math.max(0.1, v.scale * factor)) }));
  const chosen = graph.nodes.find((n) => n.id === selected);
  return (
    <main>
      <h1>Lineage of {graph.nodes.find((n) => n.depth === 0)?.name}</h1>
      <div className="toolbar">
        <span>{graph.nodes.length} models, {graph.edges.length} edges</span>
        <button onClick={() => zoom(1.25)}>Zoom in</button>
        <button onClick={() => zoom(0.8)}>Zoom out</button>
        <button onClick={() => setView({ x: 0, y: 0, scale: 1 })}>Reset view</button>
        {chosen && (
          <span data-testid="selection">
            Selected <a href={`#/models/${chosen.id}`}>{chosen.name}</a>: {related.ancestors.size} ancestor(s), {related.descendants.size} descendant(s)
          </span>
        )}
      </div>
      <svg
        className="lineage"
        role="group"
        aria-label="lineage graph"
        viewBox={`0 0 ${Math.max(layout.width, 400)} ${Math.max(layout.height, 200)}`}
        onWheel={(e) => zoom(e.deltaY < 0 ? 1.1 : 0.9)}
        onMouseDown={(e) => (drag.current = { x: e.clientX, y: e.clientY })}
        onMouseMove={(e) => {
          if (!drag.current) return;
          const [dx, dy] = [e.clientX - drag.current.x, e.clientY - drag.current.y];
          drag.current = { x: e.clientX, y: e.clientY };
          setView((v) => ({ ...v, x: v.x + dx / v.scale, y: v.y + dy / v.scale }));
        }}
        onMouseUp={() => (drag.current = null)}
        onMouseLeave={() => (drag.current = null)}
      >
        <g transform={`scale(${view.scale}) translate(${view.x} ${view.y})`}>
          {graph.edges.map((e) => {
            const points = layout.g.edge(e.parentId, e.childId)?.points ?? [];
            const lit = selected !== null && (e.childId === selected || related.ancestors.has(e.childId) || e.parentId === selected || related.descendants.has(e.parentId));
            const mid = points[Math.floor(points.length / 2)];
            return (
              <g key={`${e.parentId}-${e.childId}`}>
                <polyline points={points.map((p: { x: number; y: number }) => `${p.x},${p.y}`).join(' ')} fill="none" stroke={RELATION_COLOUR[e.relation] ?? '#57606a'} strokeWidth={lit ? 3 : 1.2} strokeDasharray={e.relation === 'MERGE_BASE' ? '4 3' : undefined}>
                  <title>{`${e.relation.toLowerCase()}${e.weight !== null ? `, weight ${e.weight}` : ''}`}</title>
                </polyline>
                {e.weight !== null && mid && <text x={mid.x + 4} y={mid.y} fontSize="10" fill="#57606a">{e.weight}</text>}
              </g>
            );
          })}
          {graph.nodes.map((n) => {
            const box = layout.g.node(n.id);
            const state = n.id === selected ? 'selected' : related.ancestors.has(n.id) ? 'ancestor' : related.descendants.has(n.id) ? 'descendant' : selected ? 'dim' : 'plain';
            return (
              <g
                key={n.id}
                className={`node node-${state}`}
                transform={`translate(${box.x - NODE_WIDTH / 2} ${box.y - NODE_HEIGHT / 2})`}
                role="button"
                tabIndex={0}
                aria-label={`${n.name} (${n.kind.toLowerCase()})`}
                aria-pressed={n.id === selected}
                onClick={() => setSelected(n.id === selected ? null : n.id)}
                onDoubleClick={() => (location.hash = `#/models/${n.id}`)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter') location.hash = `#/models/${n.id}`;
                  if (e.key === ' ') {
                    e.preventDefault();
                    setSelected(n.id === selected ? null : n.id);
                  }
                }}
              >
                <rect width={NODE_WIDTH} height={NODE_HEIGHT} rx={6} />
                <text x={NODE_WIDTH / 2} y={NODE_HEIGHT / 2 + 4} textAnchor="middle" fontSize="12">{n.name.length > 20 ? `${n.name.slice(0, 19)}…` : n.name}</text>
              </g>
            );
          })}
        </g>
      </svg>
      <p><small>Click a model to highlight its ancestors and descendants; double-click (or Enter) opens it. Edges: grey fine-tune, blue merge input (with its weight), dashed gold a merge's base.</small></p>
    </main>
  );
}
