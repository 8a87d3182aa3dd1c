/**
 * The compiled .js of one of our modules, for code that must load it in a worker thread: beside
 * the caller when it runs built code (dist/), else the build output in dist/ — ts-based test
 * runners load src/, where no .js exists (`npm test` builds first).
 */
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export function compiledModule(callerDirectory: string, file: string): string {
  const beside = join(callerDirectory, file);
  if (existsSync(beside)) return beside;
  let root = callerDirectory;
  while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root);
  const built = join(root, 'dist', relative(root, callerDirectory), file);
  if (existsSync(built)) return built;
  throw new Error(`${file} not found (looked for ${beside} and ${built}); run "npm run build"`);
}
