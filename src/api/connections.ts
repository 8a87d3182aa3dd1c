/**
 * Relay-style connections: `edges { cursor node }`, `pageInfo`, `totalCount`. Cursors are opaque
 * (base64 of what the list pages by), so a client pages with `first`/`after` without knowing it.
 */
import { ClassType, Field, Int, ObjectType } from 'type-graphql';
import { GraphQLError } from 'graphql';

@ObjectType('PageInfo', { description: 'Where a page sits in its list' })
export class PageInfo {
  @Field() hasNextPage: boolean;
  @Field() hasPreviousPage: boolean;
  @Field(() => String, { nullable: true }) startCursor: string | null;
  @Field(() => String, { nullable: true }) endCursor: string | null;
}

export interface Edge<T> {
  cursor: string;
  node: T;
}

export interface Connection<T> {
  edges: Array<Edge<T>>;
  /** The edges' nodes, for clients that need no cursors (GitHub's shortcut). */
  nodes: T[];
  pageInfo: PageInfo;
  totalCount: number;
}

/** The edge and connection types of `node`, named `${name}Edge` and `${name}Connection`. */
export function connectionType<T extends object>(node: ClassType<T>, name: string, description: string): ClassType<Connection<T>> {
  @ObjectType(`${name}Edge`)
  class EdgeType {
    @Field() cursor: string;
    @Field(() => node) node: T;
  }
  @ObjectType(`${name}Connection`, { description })
  class ConnectionType {
    @Field(() => [EdgeType]) edges: Array<Edge<T>>;
    @Field(() => [node], { description: 'the nodes of the edges, when no cursor is needed' }) nodes: T[];
    @Field(() => PageInfo) pageInfo: PageInfo;
    @Field(() => Int, { description: 'how many match, on every page' }) totalCount: number;
  }
  return ConnectionType;
}

export const encodeCursor = (kind: string, key: string): string => Buffer.from(`${kind}:${key}`).toString('base64url');

/** The key of a cursor made by encodeCursor for `kind`; a BAD_USER_INPUT naming `after` otherwise. */
export function decodeCursor(kind: string, cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(`${kind}:`)) throw new GraphQLError(`after: "${cursor}" is not a cursor of this list`, { extensions: { code: 'BAD_USER_INPUT', argument: 'after' } });
  return text.slice(kind.length + 1);
}

/** A page of `items` (fetched with one more than `first`, to know whether a next page exists). */
export function connectionOf<T>(fetched: readonly T[], first: number, cursorOf: (item: T) => string, totalCount: number, hasPreviousPage: boolean): Connection<T> {
  const page = fetched.slice(0, first);
  const edges = page.map((node) => ({ cursor: cursorOf(node), node }));
  return {
    edges,
    nodes: page,
    pageInfo: { hasNextPage: fetched.length > first, hasPreviousPage, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
    totalCount,
  };
}

/** `first` between 1 and `max`, or a BAD_USER_INPUT naming it. */
export function checkFirst(first: number, max = 500): void {
  if (!Number.isInteger(first) || first < 1 || first > max) throw new GraphQLError(`first: must be between 1 and ${max}, got ${first}`, { extensions: { code: 'BAD_USER_INPUT', argument: 'first' } });
}

/** A store page as a connection of `kind`, its rows made nodes by `toNode`. */
export function pageConnection<Row extends { id: string }, T>(page: { rows: Row[]; hasNextPage: boolean; hasPreviousPage: boolean; totalCount: number }, kind: string, toNode: (row: Row) => T): Connection<T> {
  const edges = page.rows.map((row) => ({ cursor: encodeCursor(kind, row.id), node: toNode(row) }));
  return { edges, nodes: edges.map((e) => e.node), pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: page.hasPreviousPage, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null }, totalCount: page.totalCount };
}

/** A whole list, already in memory, paged as a connection (small per-model lists loaded in batches). */
export function listConnection<T>(items: readonly T[], kind: string, keyOf: (item: T) => string, first: number, after: string | undefined): Connection<T> {
  checkFirst(first);
  const start = after ? items.findIndex((item) => keyOf(item) === decodeCursor(kind, after)) + 1 : 0;
  if (after && start === 0) throw new GraphQLError(`after: "${after}" is not a cursor of this list`, { extensions: { code: 'BAD_USER_INPUT', argument: 'after' } });
  return connectionOf(items.slice(start, start + first + 1), first, (item) => encodeCursor(kind, keyOf(item)), items.length, start > 0);
}
