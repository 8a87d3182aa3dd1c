/**
 * Cursor pages of a table in a stable order: the requested sort, then id (so rows that tie come in
 * one order every time). The cursor is the id of the last row of the previous page.
 */
import { RegistryError } from './registry-error';

export type SortDirection = 'asc' | 'desc';

export interface PageRequest<Field extends string> {
  first: number;
  /** The id of the row the page starts after. */
  after?: string;
  orderBy?: { field: Field; direction: SortDirection };
}

export interface Page<T> {
  rows: T[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  /** Rows matching the filter, on every page. */
  totalCount: number;
}

/** One table's queries, for a filter already applied. */
export interface PagedQuery<T> {
  find(args: { orderBy: Array<Record<string, SortDirection>>; take: number; cursor?: { id: string }; skip?: number }): Promise<T[]>;
  count(): Promise<number>;
  /** Whether a row with this id exists (matching the filter or not): a cursor must name one. */
  exists(id: string): Promise<boolean>;
}

export const MAX_PAGE = 500;

export async function pageOf<T, Field extends string>(query: PagedQuery<T>, request: PageRequest<Field>, defaultOrder: { field: Field; direction: SortDirection }, what: string): Promise<Page<T>> {
  const { first, after } = request;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw new RegistryError('BAD_USER_INPUT', `first must be an integer from 1 to ${MAX_PAGE}, got ${first}`);
  if (after && !(await query.exists(after).catch(() => false))) throw new RegistryError('BAD_USER_INPUT', `after: cursor "${after}" is not a ${what} id`);
  const order = request.orderBy ?? defaultOrder;
  const [rows, totalCount] = await Promise.all([
    query.find({ orderBy: [{ [order.field]: order.direction }, { id: 'asc' }], take: first + 1, ...(after ? { cursor: { id: after }, skip: 1 } : {}) }),
    query.count(),
  ]);
  return { rows: rows.slice(0, first), hasNextPage: rows.length > first, hasPreviousPage: after !== undefined, totalCount };
}
