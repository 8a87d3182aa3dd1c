/**
 * Who is asking, and what they may do. Every request carries an API token (`Authorization: Bearer
 * …` over HTTP, `connectionParams.authorization` over graphql-ws), found by its hash in the store;
 * without one a request is refused, unless the server allows anonymous reads (then it is a viewer
 * without a name). Resolvers name the least role they need with `@Authorized(...)`; the checker
 * below answers FORBIDDEN to a lower one.
 */
import { GraphQLError } from 'graphql';
import type { AuthChecker } from 'type-graphql';
import { PrismaClient } from '../store/client';
import { Role } from '../store/generated/enums';
import { roleAtLeast, verifyToken } from '../store/tokens';
import type { TokenCache } from './token-cache';

export interface Principal {
  /** The token's id; null for anonymous readers. */
  tokenId: string | null;
  /** The token's name, recorded as `createdBy`; null for anonymous readers. */
  name: string | null;
  role: Role;
  expiresAt: Date | null;
}

export const ANONYMOUS: Principal = { tokenId: null, name: null, role: 'VIEWER', expiresAt: null };

/** UNAUTHENTICATED (HTTP 401): no token, or one that is unknown, revoked or expired. */
export function unauthenticated(reason: string): GraphQLError {
  return new GraphQLError(`authentication required: ${reason}`, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

export function forbidden(reason: string): GraphQLError {
  return new GraphQLError(reason, { extensions: { code: 'FORBIDDEN', http: { status: 403 } } });
}

/** The token of an `Authorization` value ("Bearer TOKEN"; a bare token is accepted from graphql-ws clients). */
export function tokenOf(authorization: unknown): string | undefined {
  if (typeof authorization !== 'string' || authorization.trim() === '') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim());
  return match ? match[1] : authorization.trim();
}

/**
 * Resolves the caller; throws UNAUTHENTICATED when a token is missing (and anonymous reads are off) or invalid.
 * With `tokens`, a token verified before is answered from memory (see token-cache.ts for why that is safe).
 */
export async function authenticate(prisma: PrismaClient, authorization: unknown, allowAnonymousRead: boolean, tokens?: TokenCache): Promise<Principal> {
  const token = tokenOf(authorization);
  if (token === undefined) {
    if (allowAnonymousRead) return ANONYMOUS;
    throw unauthenticated('send an API token as "Authorization: Bearer <token>" (apl-merge token create)');
  }
  const check = tokens ? await tokens.verify(prisma, token) : await verifyToken(prisma, token);
  if (!check.ok) throw unauthenticated(check.reason);
  return { tokenId: check.token.id, name: check.token.name, role: check.token.role, expiresAt: check.token.expiresAt };
}

const describe = (principal: Principal) => (principal.name ? `token "${principal.name}" (${principal.role.toLowerCase()})` : 'an anonymous reader');

/** Throws FORBIDDEN unless the caller has at least `needed`. */
export function requireRole(principal: Principal, needed: Role, action: string): void {
  if (!roleAtLeast(principal.role, needed)) throw forbidden(`${action} needs the ${needed.toLowerCase()} role; ${describe(principal)} does not have it`);
}

/** type-graphql's check for `@Authorized('OPERATOR')` and the like: the first role named is the least one needed. */
export const roleChecker: AuthChecker<{ viewer: Principal }, Role> = ({ context, info }, roles) => {
  requireRole(context.viewer, roles[0] ?? 'VIEWER', `${info.parentType.name}.${info.fieldName}`);
  return true;
};
