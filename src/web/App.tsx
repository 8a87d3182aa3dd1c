/** The dashboard: a hash router over the pages, and who is signed in. */
import { useEffect, useState } from 'react';
import { gql, storeToken, storedToken } from './api';
import { JobPage, JobsPage } from './jobs';
import { ModelPage, ModelsPage } from './models';
import { NewMergePage } from './new-merge';
import { AnalysesPage, AnalysisPage } from './analyses';
import { LeaderboardPage } from './leaderboard';
import { BasesPage, LineagePage } from './lineage';
import { WorkersPage } from './workers';

export interface Viewer {
  name: string | null;
  role: 'VIEWER' | 'OPERATOR' | 'ADMIN';
}

function useRoute(): string {
  const [route, setRoute] = useState(location.hash.slice(1) || '/models');
  useEffect(() => {
    const onChange = () => setRoute(location.hash.slice(1) || '/models');
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

function SignIn({ onSignedIn, problem }: { onSignedIn: () => void; problem: string | null }) {
  const [token, setToken] = useState('');
  return (
    <main>
      <h1>Sign in</h1>
      <p>Open the address <code>apl-merge start</code> printed, or paste an API token (<code>apl-merge token create</code>).</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          storeToken(token.trim());
          onSignedIn();
        }}
      >
        <label>
          API token <input type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" size={60} />
        </label>{' '}
        <button type="submit">Sign in</button>
      </form>
      {problem && <p className="error" role="alert">{problem}</p>}
    </main>
  );
}

export function App() {
  const route = useRoute();
  const [viewer, setViewer] = useState<Viewer | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!storedToken()) return;
    gql<{ viewer: Viewer }>('{ viewer { name role } }')
      .then(({ viewer }) => {
        setViewer(viewer);
        setProblem(null);
      })
      .catch((err: Error) => {
        storeToken(null);
        setViewer(null);
        setProblem(err.message);
      });
  }, [attempt]);
  if (!viewer) return <SignIn onSignedIn={() => setAttempt((a) => a + 1)} problem={problem} />;
  const [, page, id] = route.split('/');
  const link = (to: string, label: string) => (
    <a href={`#/${to}`} aria-current={page === to ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <header>
        <strong>apl-merge</strong>
        {link('models', 'Models')}
        {link('lineage', 'Lineage')}
        {link('analyses', 'Importance')}
        {link('jobs', 'Jobs')}
        {link('workers', 'Workers')}
        {viewer.role !== 'VIEWER' && link('new-merge', 'New merge')}
        <span className="who">
          Signed in as {viewer.name ?? 'an anonymous reader'} ({viewer.role.toLowerCase()}){' '}
          <button
            onClick={() => {
              storeToken(null);
              setViewer(null);
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      {page === 'models' && !id && <ModelsPage />}
      {page === 'models' && id && <ModelPage id={id} />}
      {page === 'jobs' && !id && <JobsPage />}
      {page === 'jobs' && id && <JobPage id={id} viewer={viewer} />}
      {page === 'lineage' && !id && <BasesPage />}
      {page === 'lineage' && id && <LineagePage baseId={id} />}
      {page === 'leaderboard' && id && <LeaderboardPage baseId={id} />}
      {page === 'analyses' && !id && <AnalysesPage viewer={viewer} />}
      {page === 'analyses' && id && <AnalysisPage id={id} />}
      {page === 'workers' && <WorkersPage />}
      {page === 'new-merge' && (viewer.role !== 'VIEWER' ? <NewMergePage /> : <main><p>Starting merges needs the operator role.</p></main>)}
    </>
  );
}
