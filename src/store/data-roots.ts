/**
 * Data roots: the directories models and tasks may be registered from. Some are given when the
 * server starts (flags, environment); an admin may add more, kept in the `data_roots` table. Each
 * has a name, so that a path can be shown to someone who must not see the server's directories as
 * `data://NAME/relative/path`, and named that way in requests.
 */
import { realpathSync } from 'node:fs';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { PrismaClient } from './generated/client';
import { RegistryError } from './registry-error';

export interface DataRoot {
  name: string;
  /** Absolute, symlinks resolved when it exists. */
  path: string;
  /** Given at start (`config`) or added through the API (`added`). */
  source: 'config' | 'added';
}

export const DATA_URI_SCHEME = 'data://';

const realOrResolved = (path: string): string => {
  try {
    return realpathSync(resolve(path));
  } catch {
    return resolve(path);
  }
};

const ROOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Names the configured roots after their directories ("models", "models-2", … when two share one). */
export function namedRoots(paths: readonly string[]): DataRoot[] {
  const roots: DataRoot[] = [];
  for (const path of paths) {
    const base = basename(resolve(path)).replace(/^\.+/, '').replace(/[^A-Za-z0-9._-]/g, '-') || 'root';
    let name = base;
    for (let n = 2; roots.some((r) => r.name === name); n++) name = `${base}-${n}`;
    roots.push({ name, path: realOrResolved(path), source: 'config' });
  }
  return roots;
}

/** The configured roots and those an admin added (a configured name wins over an added one). */
export async function allDataRoots(prisma: PrismaClient, configured: readonly DataRoot[]): Promise<DataRoot[]> {
  const added = await prisma.dataRoot.findMany({ orderBy: { name: 'asc' } });
  return [...configured, ...added.filter((a) => !configured.some((c) => c.name === a.name)).map((a) => ({ name: a.name, path: a.path, source: 'added' as const }))];
}

export async function addDataRoot(prisma: PrismaClient, configured: readonly DataRoot[], input: { name: string; path: string; createdBy?: string | null }): Promise<DataRoot> {
  if (!ROOT_NAME.test(input.name)) throw new RegistryError('BAD_USER_INPUT', `data root name "${input.name}" must be 1 to 64 letters, digits, '.', '_' or '-'`);
  if (!isAbsolute(input.path)) throw new RegistryError('BAD_USER_INPUT', `data root path "${input.path}" must be absolute`);
  let path: string;
  try {
    path = realpathSync(input.path);
  } catch {
    throw new RegistryError('BAD_USER_INPUT', `data root path "${input.path}" does not exist`);
  }
  const roots = await allDataRoots(prisma, configured);
  if (roots.some((r) => r.name === input.name)) throw new RegistryError('CONFLICT', `a data root named "${input.name}" already exists`);
  if (roots.some((r) => r.path === path)) throw new RegistryError('CONFLICT', `"${path}" is already a data root`);
  const row = await prisma.dataRoot.create({ data: { name: input.name, path, createdBy: input.createdBy ?? null } });
  return { name: row.name, path: row.path, source: 'added' };
}

export async function removeDataRoot(prisma: PrismaClient, configured: readonly DataRoot[], name: string): Promise<DataRoot> {
  if (configured.some((r) => r.name === name)) throw new RegistryError('BAD_USER_INPUT', `data root "${name}" was given when the server started; it can only be removed there`);
  const row = await prisma.dataRoot.delete({ where: { name } }).catch(() => null);
  if (!row) throw new RegistryError('NOT_FOUND', `no data root is named "${name}"`);
  return { name: row.name, path: row.path, source: 'added' };
}

/** The root a (real, absolute) path lies in, and the path relative to it; undefined when it lies in none. */
export function locateInRoots(path: string, roots: readonly DataRoot[]): { root: DataRoot; relativePath: string } | undefined {
  for (const root of roots) {
    const r = relative(root.path, path);
    // `..` alone or `../…` leaves the root; a name that merely starts with two dots does not.
    const leaves = r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r);
    if (!leaves) return { root, relativePath: r.split(sep).join('/') };
  }
  return undefined;
}

/** `data://NAME/rel` → the absolute path it names (not checked to exist); other text is returned resolved. */
export function pathFromRequest(text: string, roots: readonly DataRoot[]): string {
  if (!text.startsWith(DATA_URI_SCHEME)) return text;
  const rest = text.slice(DATA_URI_SCHEME.length);
  const slash = rest.indexOf('/');
  const name = slash < 0 ? rest : rest.slice(0, slash);
  const root = roots.find((r) => r.name === name);
  if (!root) throw new RegistryError('BAD_USER_INPUT', `"${text}" names no data root (roots: ${roots.map((r) => r.name).join(', ') || 'none'})`);
  const path = resolve(root.path, slash < 0 ? '.' : rest.slice(slash + 1));
  return path;
}

/** How a path is shown to someone who may not see the server's directories: `data://NAME/rel`, or a placeholder outside every root. */
export function publicPath(path: string, roots: readonly DataRoot[]): string {
  const found = locateInRoots(path, roots);
  if (!found) return `${DATA_URI_SCHEME}(outside the data roots)/${basename(path)}`;
  return `${DATA_URI_SCHEME}${found.root.name}${found.relativePath ? `/${found.relativePath}` : ''}`;
}

export interface PathReplacement {
  from: string;
  to: string;
}

/** What redactRootPaths replaces, longest first (so a root inside another is replaced as itself): build once, redact many strings. */
export function rootReplacements(roots: readonly DataRoot[], hidden: readonly string[] = []): PathReplacement[] {
  return [...roots.map((r) => ({ from: r.path, to: `${DATA_URI_SCHEME}${r.name}` })), ...hidden.map((h) => ({ from: h, to: '(server path)' }))]
    .filter(({ from }) => from && from !== '/')
    .sort((a, b) => b.from.length - a.from.length);
}

/** Replaces every root directory named in free text (messages, reports) with its `data://` name. */
export function redactRootPaths(text: string, roots: readonly DataRoot[], hidden: readonly string[] = [], replacements = rootReplacements(roots, hidden)): string {
  // Every path is absolute: a string without a slash names none (ids, names, most of an answer).
  if (!text.includes('/')) return text;
  let out = text;
  for (const { from, to } of replacements) {
    if (out.includes(from)) out = out.split(`file://${from}`).join(to).split(from).join(to);
  }
  return out;
}
