/**
 * Whether an error means the database cannot be reached right now (restarting, shutting down,
 * refusing connections, or a connection it cut), as opposed to a problem with the request. The
 * API answers those with SERVICE_UNAVAILABLE: the request may simply be tried again.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND',
  '57P01', // admin_shutdown: terminating connection due to administrator command
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the database system is starting up / shutting down
  '08000', '08001', '08003', '08004', '08006', // connection exceptions
  '53300', // too_many_connections
  'P1001', // Prisma: can't reach database server
  'P1002', // Prisma: database server timed out
  'P1017', // Prisma: server has closed the connection
]);
const UNAVAILABLE_TEXT = /Connection terminated|is not currently accepting connections|connection timeout|ECONNREFUSED|ECONNRESET|the database system is (starting up|shutting down|in recovery mode)|terminating connection due to administrator command|Can't reach database server|Timed out fetching a new connection|does not allow connections|server closed the connection/i;

export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 6) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; originalError?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown; kind?: unknown } } } };
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  const adapter = e.meta?.driverAdapterError?.cause;
  if (adapter && ((typeof adapter.originalCode === 'string' && UNAVAILABLE_CODES.has(adapter.originalCode)) || adapter.kind === 'DatabaseNotReachable' || adapter.kind === 'ConnectionClosed')) return true;
  if (typeof e.message === 'string' && UNAVAILABLE_TEXT.test(e.message)) return true;
  return isDatabaseUnavailable(e.cause, depth + 1) || isDatabaseUnavailable(e.originalError, depth + 1);
}
