/**
 * API tokens. A token is 32 random bytes (256 bits) in base64url behind the `aplm_` marker; it is
 * shown once, when created, and only its sha256 is stored (a token is random, not a password, so
 * a fast hash suffices: nothing can be guessed from it). The first characters are kept in the
 * clear as `prefix`, so a listing can say which token is which. Revoking a token NOTIFYs the API
 * processes, which close the WebSockets it opened.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Prisma, PrismaClient } from './generated/client';
import { Role } from './generated/enums';
import { RegistryError } from './registry';

export const TOKEN_MARKER = 'aplm_';
/** Where revocations are announced, with the token's id as payload. */
export const TOKEN_REVOKED_CHANNEL = 'apl_merge_token_revoked';
const PREFIX_LENGTH = TOKEN_MARKER.length + 8;

export const ROLES: readonly Role[] = ['VIEWER', 'OPERATOR', 'ADMIN'];

/** Whether `role` carries at least the rights of `needed` (viewer < operator < admin). */
export const roleAtLeast = (role: Role, needed: Role): boolean => ROLES.indexOf(role) >= ROLES.indexOf(needed);

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export interface TokenInfo {
  id: string;
  name: string;
  role: Role;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  createdBy: string | null;
}

const INFO = { id: true, name: true, role: true, prefix: true, createdAt: true, lastUsedAt: true, expiresAt: true, revokedAt: true, createdBy: true } as const;

/** Token names are what listings, revocation and `createdBy` show: short, printable, no spaces. */
export function checkTokenName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(name)) {
    throw new RegistryError('BAD_USER_INPUT', `token name "${name}" must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit`);
  }
}

/** "30d", "12h", "90m", "2w": a duration in milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*(m|h|d|w)$/.exec(text.trim());
  if (!match || Number(match[1]) === 0) throw new RegistryError('BAD_USER_INPUT', `expiry "${text}" is not a duration such as 90m, 12h, 30d or 2w`);
  const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[match[2] as 'm' | 'h' | 'd' | 'w'];
  return Number(match[1]) * unit;
}

export interface CreatedToken {
  token: string;
  info: TokenInfo;
}

export async function createToken(prisma: PrismaClient, input: { name: string; role: Role; expiresAt?: Date | null; createdBy?: string | null }): Promise<CreatedToken> {
  checkTokenName(input.name);
  if (!ROLES.includes(input.role)) throw new RegistryError('BAD_USER_INPUT', `role "${input.role}" is not one of ${ROLES.join(', ')}`);
  if (input.expiresAt && !(input.expiresAt.getTime() > Date.now())) throw new RegistryError('BAD_USER_INPUT', 'expiresAt must be in the future');
  const token = TOKEN_MARKER + randomBytes(32).toString('base64url');
  try {
    const info = await prisma.apiToken.create({
      data: { name: input.name, role: input.role, prefix: token.slice(0, PREFIX_LENGTH), hash: hashToken(token), expiresAt: input.expiresAt ?? null, createdBy: input.createdBy ?? null },
      select: INFO,
    });
    return { token, info };
  } catch (err) {
    if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') throw new RegistryError('CONFLICT', `a token named "${input.name}" already exists`);
    throw err;
  }
}

export async function listTokens(prisma: PrismaClient): Promise<TokenInfo[]> {
  return prisma.apiToken.findMany({ orderBy: [{ createdAt: 'asc' }, { name: 'asc' }], select: INFO });
}

/** Revokes the token of that name (and tells every API process); NOT_FOUND when there is none, CONFLICT when already revoked. */
export async function revokeToken(prisma: PrismaClient, name: string): Promise<TokenInfo> {
  return prisma.$transaction(async (tx) => {
    const existing = await tx.apiToken.findUnique({ where: { name }, select: INFO });
    if (!existing) throw new RegistryError('NOT_FOUND', `no token is named "${name}"`);
    if (existing.revokedAt) throw new RegistryError('CONFLICT', `token "${name}" was already revoked at ${existing.revokedAt.toISOString()}`);
    const revoked = await tx.apiToken.update({ where: { name }, data: { revokedAt: new Date() }, select: INFO });
    await tx.$executeRaw`SELECT pg_notify(${TOKEN_REVOKED_CHANNEL}, ${revoked.id})`;
    return revoked;
  });
}

export type TokenCheck = { ok: true; token: TokenInfo } | { ok: false; reason: string };

/** How often last_used_at is written for one token, at most (a write per request would be a write per query). */
const LAST_USED_RESOLUTION_MS = 60_000;

/** Whether a token row found by its hash may be used now: not revoked, not expired. */
export function tokenStanding(found: TokenInfo, now = Date.now()): TokenCheck {
  if (found.revokedAt) return { ok: false, reason: `token "${found.name}" was revoked` };
  if (found.expiresAt && found.expiresAt.getTime() <= now) return { ok: false, reason: `token "${found.name}" expired at ${found.expiresAt.toISOString()}` };
  return { ok: true, token: found };
}

/** Whether a live token's last_used_at is due to be written again. */
export const lastUsedIsStale = (token: TokenInfo, now = Date.now()): boolean => !token.lastUsedAt || now - token.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS;

/** Finds a live token by its text; says why when there is none (unknown, revoked, expired). */
export async function verifyToken(prisma: PrismaClient, token: string): Promise<TokenCheck> {
  if (!token.startsWith(TOKEN_MARKER)) return { ok: false, reason: 'not an apl-merge API token' };
  const found = await prisma.apiToken.findUnique({ where: { hash: hashToken(token) }, select: INFO });
  if (!found) return { ok: false, reason: 'unknown token' };
  const standing = tokenStanding(found);
  if (!standing.ok) return standing;
  if (lastUsedIsStale(found)) {
    const now = new Date();
    await prisma.apiToken.update({ where: { id: found.id }, data: { lastUsedAt: now } });
    found.lastUsedAt = now;
  }
  return { ok: true, token: found };
}
