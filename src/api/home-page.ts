import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** dist/web of this project when the dashboard has been built (npm run build), else undefined. */
export function dashboardDirectory(): string | undefined {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) return undefined;
    dir = dirname(dir);
  }
  const built = join(dir, 'dist', 'web');
  return existsSync(join(built, 'index.html')) ? built : undefined;
}

/**
 * The page served at `/` when the dashboard has not been built: self-contained (no CDN, no external asset), it signs the browser in
 * from the `#token=…` fragment that `apl-merge start` prints (a fragment never reaches the
 * server's request line or logs), keeps the token in this browser's local storage, and runs
 * GraphQL queries against /graphql with it.
 */
export function homePage(): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>apl-merge</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
textarea { width: 100%; height: 10rem; font: 13px ui-monospace, monospace; }
pre { background: #f4f4f4; padding: 1rem; overflow: auto; max-height: 30rem; }
.who { color: #555; }
</style></head>
<body>
<h1>apl-merge</h1>
<p>GraphQL API at <code>/graphql</code> (subscriptions over WebSocket on the same path). <span class="who" id="who"></span></p>
<form id="signin"><label>API token <input id="token" type="password" size="60" autocomplete="off"></label> <button>Sign in</button> <button type="button" id="signout">Sign out</button></form>
<h2>Query</h2>
<textarea id="query">{ models(first: 20) { nodes { id name kind createdBy } pageInfo { hasNextPage } } }</textarea>
<p><button id="run">Run</button></p>
<pre id="out"></pre>
<script>
const KEY = 'apl-merge-token';
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get('token')) { localStorage.setItem(KEY, fragment.get('token')); history.replaceState(null, '', location.pathname); }
const who = document.getElementById('who');
const show = () => { who.textContent = localStorage.getItem(KEY) ? 'Signed in with a token.' : 'Not signed in.'; };
show();
document.getElementById('signin').onsubmit = (e) => { e.preventDefault(); localStorage.setItem(KEY, document.getElementById('token').value.trim()); document.getElementById('token').value = ''; show(); };
document.getElementById('signout').onclick = () => { localStorage.removeItem(KEY); show(); };
document.getElementById('run').onclick = async () => {
  const token = localStorage.getItem(KEY);
  const response = await fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: 'Bearer ' + token } : {}) }, body: JSON.stringify({ query: document.getElementById('query').value }) });
  document.getElementById('out').textContent = JSON.stringify(await response.json(), null, 2);
};
</script>
</body></html>
`;
}
