/**
 * `apl-merge token create|list|revoke`: API tokens, managed on the database at DATABASE_URL or,
 * without it, on the embedded database of a data directory — the one a running `apl-merge start`
 * serves (found through its postmaster.pid), or started for the command and stopped after it.
 */
import { resolve } from 'node:path';
import { createPrisma, PrismaClient } from '../store/client';
import { runningEmbeddedDatabase, startEmbeddedDatabase } from '../store/embedded';
import { Role } from '../store/generated/enums';
import { migrate } from '../store/migrate';
import { createToken, listTokens, parseDuration, revokeToken, ROLES, TokenInfo } from '../store/tokens';

export interface TokenDatabaseFlags {
  dataDir: string;
}

async function withDatabase<T>(flags: TokenDatabaseFlags, work: (prisma: PrismaClient) => Promise<T>): Promise<T> {
  let url = process.env.DATABASE_URL;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    url = runningEmbeddedDatabase(flags.dataDir);
    if (!url) {
      const embedded = await startEmbeddedDatabase(resolve(flags.dataDir));
      url = embedded.url;
      stop = () => embedded.stop();
    }
  }
  try {
    await migrate(url);
    const prisma = createPrisma(url);
    try {
      return await work(prisma);
    } finally {
      await prisma.$disconnect();
    }
  } finally {
    await stop?.();
  }
}

export function parseRole(text: string): Role {
  const role = text.toUpperCase() as Role;
  if (!ROLES.includes(role)) throw new Error(`--role must be one of ${ROLES.map((r) => r.toLowerCase()).join(', ')}, got "${text}"`);
  return role;
}

const when = (date: Date | null) => (date ? date.toISOString().replace('.000Z', 'Z') : '-');

function describe(t: TokenInfo): string {
  const state = t.revokedAt ? `revoked ${when(t.revokedAt)}` : t.expiresAt && t.expiresAt.getTime() <= Date.now() ? 'expired' : 'active';
  return `${t.name.padEnd(20)} ${t.role.toLowerCase().padEnd(8)} ${t.prefix}…  created ${when(t.createdAt)}  last used ${when(t.lastUsedAt)}  expires ${when(t.expiresAt)}  ${state}`;
}

export async function tokenCreateCommand(flags: TokenDatabaseFlags & { name: string; role: string; expires?: string }): Promise<void> {
  const role = parseRole(flags.role);
  const expiresAt = flags.expires ? new Date(Date.now() + parseDuration(flags.expires)) : null;
  const { token, info } = await withDatabase(flags, (prisma) => createToken(prisma, { name: flags.name, role, expiresAt, createdBy: 'apl-merge token create' }));
  console.log(`created token "${info.name}" (${info.role.toLowerCase()}${info.expiresAt ? `, expires ${when(info.expiresAt)}` : ', no expiry'}); it is shown only now:`);
  console.log(token);
}

export async function tokenListCommand(flags: TokenDatabaseFlags & { json?: boolean }): Promise<void> {
  const tokens = await withDatabase(flags, listTokens);
  if (flags.json) {
    console.log(JSON.stringify(tokens, null, 2));
    return;
  }
  if (tokens.length === 0) console.log('no tokens');
  for (const t of tokens) console.log(describe(t));
}

export async function tokenRevokeCommand(name: string, flags: TokenDatabaseFlags): Promise<void> {
  const revoked = await withDatabase(flags, (prisma) => revokeToken(prisma, name));
  console.log(`revoked token "${revoked.name}"`);
}
