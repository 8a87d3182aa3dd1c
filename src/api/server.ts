/**
 * The HTTP and WebSocket server: Apollo Server over express at /graphql, and graphql-ws on the same
 * path for subscriptions, both on one schema and behind the same rules: an Origin policy, a token
 * per request (or per connection, checked again per subscription), size limits, query limits,
 * mutation rate limits, and path redaction for everyone but admins. The WebSocket server is
 * closed when HTTP drains.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { ApolloServer, ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { join } from 'node:path';
import express, { NextFunction, Request, Response } from 'express';
import { ExecutionArgs, getOperationAST, GraphQLError, GraphQLFormattedError, GraphQLSchema, validate } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import type { PgBoss } from 'pg-boss';
import { PrismaClient } from '../store/client';
import { isDatabaseUnavailable } from '../store/availability';
import { allDataRoots, DataRoot } from '../store/data-roots';
import { listenOn, Listener } from '../store/notifications';
import { TOKEN_REVOKED_CHANNEL } from '../store/tokens';
import { ANONYMOUS, authenticate, Principal } from './auth';
import { TokenCache } from './token-cache';
import { createLoaders } from './loaders';
import { ApiContext } from './context';
import { JobEventHub } from './event-hub';
import { PathRedactor } from './exposure';
import { DEFAULT_QUERY_LIMITS, DocumentChecker, QueryLimits } from './limits';
import { DEFAULT_MUTATION_RATE, MutationRateLimiter, RateLimitSettings } from './rate-limit';
import { buildApiSchema } from './schema';
import { compiledExecutionGateway } from './compiled-execution';
import { dashboardDirectory, homePage } from './home-page';

export interface ApiServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface SecuritySettings {
  /** Requests without a token get viewer rights (nothing else) instead of UNAUTHENTICATED. */
  allowAnonymousRead: boolean;
  /** Origins (scheme://host:port) allowed besides the server's own; requests with no Origin header (non-browser clients) are always allowed. */
  allowedOrigins: readonly string[];
  queryLimits: QueryLimits;
  mutationRate: RateLimitSettings;
  maxActiveJobsPerToken: number;
  maxBodyBytes: number;
  maxWebSocketMessageBytes: number;
  maxSubscriptionsPerConnection: number;
}

export const DEFAULT_SECURITY: SecuritySettings = {
  allowAnonymousRead: false,
  allowedOrigins: [],
  queryLimits: DEFAULT_QUERY_LIMITS,
  mutationRate: DEFAULT_MUTATION_RATE,
  maxActiveJobsPerToken: 20,
  maxBodyBytes: 256 * 1024,
  maxWebSocketMessageBytes: 64 * 1024,
  maxSubscriptionsPerConnection: 50,
};

export interface ApiServerOptions {
  prisma: PrismaClient;
  /** The data roots given at start (an admin may add more). */
  dataRoots: readonly DataRoot[];
  /** Server directories outside the data roots that non-admins never see (job outputs, the data directory). */
  hiddenPaths?: readonly string[];
  /** Enables live events and token revocation across processes (LISTEN on this database). */
  databaseUrl?: string;
  /** Enables starting and cancelling jobs. */
  queue?: PgBoss;
  port?: number;
  host?: string;
  security?: Partial<SecuritySettings> & { queryLimits?: Partial<QueryLimits> };
}

/** The origins a request may come from: the server's own (as the Host header names it) and those configured. */
function originAllowed(origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

const jsonError = (res: Response, status: number, code: string, message: string) => res.status(status).json({ errors: [{ message, extensions: { code } }] });

const bearerOf = (req: IncomingMessage) => req.headers.authorization;

interface Connection {
  viewer: Principal;
  subscriptions: Set<string>;
  expiry?: NodeJS.Timeout;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const settings: SecuritySettings = { ...DEFAULT_SECURITY, ...options.security, queryLimits: { ...DEFAULT_QUERY_LIMITS, ...options.security?.queryLimits } };
  const schema: GraphQLSchema = await buildApiSchema();
  const events = options.databaseUrl ? await JobEventHub.start(options.databaseUrl) : undefined;
  const limiter = new MutationRateLimiter(settings.mutationRate);
  const tokens = new TokenCache();
  const documents = new DocumentChecker(schema, settings.queryLimits);
  const { prisma } = options;
  const hidden = options.hiddenPaths ?? [];
  // startedAt only for one-shot requests: a subscription's context answers events long after it began.
  const context = (viewer: Principal, startedAt?: number): ApiContext => ({ prisma, viewer, configuredRoots: options.dataRoots, events, queue: options.queue, maxActiveJobsPerToken: settings.maxActiveJobsPerToken, loaders: createLoaders(prisma), startedAt });
  // Every answer to a non-admin (each event pushed to each subscriber too) is redacted against the
  // data roots: they are read at most every ROOTS_TTL_MS, not once per answer.
  let roots: { at: number; value: Promise<DataRoot[]> } | undefined;
  const currentRoots = (): Promise<DataRoot[]> => {
    if (!roots || Date.now() - roots.at > ROOTS_TTL_MS) {
      const value = allDataRoots(prisma, options.dataRoots).catch((err: Error) => {
        roots = undefined;
        throw err;
      });
      roots = { at: Date.now(), value };
    }
    return roots.value;
  };
  const redactorFor = async (viewer: Principal): Promise<PathRedactor | undefined> => (viewer.role === 'ADMIN' ? undefined : new PathRedactor(await currentRoots(), hidden));

  const app = express();
  app.disable('x-powered-by');
  // No ETag on GraphQL answers: a POST is never revalidated, and hashing each answer cost as much as writing it.
  app.set('etag', false);
  const http: Server = createServer(app);
  // Idle keep-alive connections are closed by the client first: with Node's 5 s default a client
  // (undici's pool keeps sockets 4 s) could send a request on a socket the server was closing
  // that instant, and get ECONNRESET for a request the server never saw.
  http.keepAliveTimeout = 65_000;
  http.headersTimeout = 66_000;

  // Browsers send Origin on cross-site requests; only the server's own pages (and configured origins) may call it.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!originAllowed(req.headers.origin, req.headers.host, settings.allowedOrigins)) return jsonError(res, 403, 'FORBIDDEN', `origin ${req.headers.origin} is not allowed (see --allowed-origins)`);
    next();
  });
  // The dashboard (src/web, built into dist/web by npm run build): every asset from this server, nothing inline.
  const dashboard = dashboardDirectory();
  if (dashboard) {
    // Only `/` and the bundle's assets: GraphQL requests never look at the file system.
    const dashboardPolicy = (_req: Request, res: Response, next: NextFunction) => {
      res.set('content-security-policy', "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
      next();
    };
    app.get('/', dashboardPolicy, (_req, res) => res.sendFile(join(dashboard, 'index.html')));
    app.use('/assets', dashboardPolicy, express.static(join(dashboard, 'assets'), { fallthrough: false }));
  } else {
    app.get('/', (_req, res) => {
      res.set('content-security-policy', "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; connect-src 'self'");
      res.type('html').send(homePage());
    });
  }

  // --- WebSocket (graphql-ws) ---
  const wss = new WebSocketServer({
    server: http,
    path: '/graphql',
    maxPayload: settings.maxWebSocketMessageBytes,
    verifyClient: (info: { origin?: string; req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      // ws reports an absent Origin header as undefined; browsers always send one.
      const origin = info.req.headers.origin;
      if (originAllowed(origin, info.req.headers.host, settings.allowedOrigins)) done(true);
      else done(false, 403, 'origin not allowed');
    },
  });
  const connections = new Map<WebSocket, Connection>();
  const closeFor = (socket: WebSocket, code: number, reason: string) => {
    if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
  };
  // A revocation announced while the listener was disconnected is found by checking every open connection's token again.
  const recheckConnections = async () => {
    for (const [socket, connection] of connections) {
      if (!connection.viewer.tokenId) continue;
      const row = await prisma.apiToken.findUnique({ where: { id: connection.viewer.tokenId }, select: { revokedAt: true } }).catch(() => undefined);
      if (row === null || row?.revokedAt) closeFor(socket, CloseCode.Unauthorized, 'token revoked');
    }
  };
  const revocations: Listener | undefined = options.databaseUrl
    ? await listenOn(
        options.databaseUrl,
        TOKEN_REVOKED_CHANNEL,
        (tokenId) => {
          tokens.revoked(tokenId);
          for (const [socket, connection] of connections) if (connection.viewer.tokenId === tokenId) closeFor(socket, CloseCode.Unauthorized, 'token revoked');
        },
        {
          onDisconnect: () => tokens.setListening(false),
          onReconnect: () => {
            tokens.setListening(true);
            void recheckConnections();
          },
        },
      )
    : undefined;
  // Verified tokens are answered from memory only while revocations can be heard.
  if (revocations) tokens.setListening(true);
  type WsExtra = { socket: WebSocket; request: IncomingMessage };
  const connectionOf = (extra: WsExtra): Connection => {
    const connection = connections.get(extra.socket);
    if (!connection) throw new Error('graphql-ws: a subscription before connection_init was accepted');
    return connection;
  };
  const wsCleanup = useServer<Record<string, unknown> | undefined, WsExtra>(
    {
      schema,
      context: (ctx) => context(connectionOf(ctx.extra).viewer),
      onConnect: async (ctx) => {
        try {
          const viewer = await authenticate(prisma, ctx.connectionParams?.authorization, settings.allowAnonymousRead, tokens);
          const connection: Connection = { viewer, subscriptions: new Set() };
          if (viewer.expiresAt) {
            const ms = Math.max(0, viewer.expiresAt.getTime() - Date.now());
            // setTimeout holds at most 2^31-1 ms; later expiries are caught by the per-subscription check.
            if (ms < 2 ** 31 - 1) connection.expiry = setTimeout(() => closeFor(ctx.extra.socket, CloseCode.Unauthorized, 'token expired'), ms);
          }
          connections.set(ctx.extra.socket, connection);
          return true;
        } catch (err) {
          // 1013 "try again later" when the token could not be checked because the database is away.
          if (isDatabaseUnavailable(err)) closeFor(ctx.extra.socket, 1013, 'database unavailable; try again shortly');
          else closeFor(ctx.extra.socket, CloseCode.Unauthorized, (err as Error).message.slice(0, 120));
          return false;
        }
      },
      onClose: (ctx) => {
        const connection = connections.get(ctx.extra.socket);
        if (connection?.expiry) clearTimeout(connection.expiry);
        connections.delete(ctx.extra.socket);
      },
      onSubscribe: async (ctx, id, payload) => {
        const connection = connectionOf(ctx.extra);
        // The token is checked again: one revoked or expired since the connection opened stops here.
        if (connection.viewer.tokenId) {
          try {
            connection.viewer = await authenticate(prisma, ctx.connectionParams?.authorization, false, tokens);
          } catch (err) {
            if (isDatabaseUnavailable(err)) return [new GraphQLError(DATABASE_UNAVAILABLE, { extensions: { code: 'SERVICE_UNAVAILABLE' } })];
            closeFor(ctx.extra.socket, CloseCode.Unauthorized, (err as Error).message.slice(0, 120));
            return [err as GraphQLError];
          }
        }
        if (connection.subscriptions.size >= settings.maxSubscriptionsPerConnection) {
          return [new GraphQLError(`at most ${settings.maxSubscriptionsPerConnection} subscriptions per connection`, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: settings.maxSubscriptionsPerConnection } })];
        }
        const checked = documents.check(payload.query, payload.variables ?? undefined, payload.operationName ?? undefined);
        if (!('document' in checked)) return ['refused' in checked ? checked.refused : checked.syntaxError];
        const { document } = checked;
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const operation = getOperationAST(document, payload.operationName ?? undefined);
        if (operation?.operation === 'mutation' && connection.viewer.tokenId) {
          try {
            limiter.take(connection.viewer.tokenId);
          } catch (err) {
            return [err as GraphQLError];
          }
        }
        connection.subscriptions.add(id);
        const args: ExecutionArgs = { schema, document, variableValues: payload.variables, operationName: payload.operationName, contextValue: context(connection.viewer) };
        return args;
      },
      onComplete: (ctx, id) => {
        connections.get(ctx.extra.socket)?.subscriptions.delete(id);
      },
      onNext: async (ctx, _id, _payload, _args, result) => {
        const redactor = await redactorFor(connectionOf(ctx.extra).viewer);
        return redactor ? redactor.value(result) : undefined;
      },
      onError: async (ctx, id, _payload, errors): Promise<GraphQLFormattedError[]> => {
        const connection = connections.get(ctx.extra.socket);
        connection?.subscriptions.delete(id);
        const redactor = connection ? await redactorFor(connection.viewer) : undefined;
        return errors.map((e) => {
          const formatted = maskInternal(e.toJSON());
          return redactor ? redactor.value(formatted) : formatted;
        });
      },
    },
    wss,
  );

  // --- HTTP (Apollo) ---
  const limitsPlugin: ApolloServerPlugin<ApiContext> = {
    async requestDidStart() {
      return {
        // Every document reached Apollo through the HTTP middleware, which checked its limits (batches and persisted queries are refused).
        async didResolveOperation({ operation, contextValue }) {
          if (operation?.operation === 'mutation' && contextValue.viewer.tokenId) limiter.take(contextValue.viewer.tokenId);
        },
        async willSendResponse({ response, contextValue }) {
          if (response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          // Nothing answered because the database is away: the same 503 the token check gives then,
          // whichever step found it missing (a token known from before is checked in memory).
          if (result.errors?.length && result.errors.every((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE') && Object.values(result.data ?? {}).every((v) => v === null)) {
            response.body.singleResult = { errors: [{ message: DATABASE_UNAVAILABLE, extensions: { code: 'SERVICE_UNAVAILABLE' } }] };
            response.http.status = 503;
            response.http.headers.set('retry-after', '2');
            return;
          }
          const redactor = await redactorFor(contextValue.viewer);
          if (!redactor) return;
          if (result.data && !result.errors && !result.extensions) {
            // Redaction only ever changes text with a slash in it: an answer whose JSON has none is sent
            // as it is, and the JSON written here is the one sent (stringifyResult), not made twice.
            const text = JSON.stringify({ data: result.data });
            if (!text.includes('/')) {
              writtenAnswers.set(result.data, text);
              return;
            }
          }
          if (result.data) result.data = redactor.value(result.data);
          if (result.errors) result.errors = redactor.value(result.errors);
        },
      };
    },
  };
  // Answers' JSON already written by the redaction check, by their data object.
  const writtenAnswers = new WeakMap<object, string>();
  const apollo = new ApolloServer<ApiContext>({
    gateway: compiledExecutionGateway(schema),
    // Introspection stays on: dashboards and scripts discover the schema with it (behind a token).
    introspection: true,
    // Every document is checked against the limits before Apollo sees it; hash-only (persisted) queries would skip that.
    persistedQueries: false,
    includeStacktraceInErrorResponses: false,
    parseOptions: { maxTokens: settings.queryLimits.maxTokens },
    formatError: (formatted, error) => maskInternal(formatted, error),
    // Compact JSON: Apollo's default indents every answer, which makes a lineage graph half again as many bytes to write.
    stringifyResult: (value) => (value.data && !value.errors && !value.extensions && writtenAnswers.get(value.data)) || JSON.stringify(value),
    // The process that starts the server stops it, in its own order; Apollo must not act on signals itself.
    stopOnTerminationSignals: false,
    plugins: [
      ApolloServerPluginCacheControlDisabled(),
      // Apollo's landing page loads from a CDN; this server serves nothing from outside.
      ApolloServerPluginLandingPageDisabled(),
      ApolloServerPluginDrainHttpServer({ httpServer: http }),
      limitsPlugin,
      { async serverWillStart() { return { async drainServer() { await wsCleanup.dispose(); } }; } },
    ],
  });
  await apollo.start();
  app.use(
    '/graphql',
    express.json({ limit: settings.maxBodyBytes }),
    // Malformed or oversized bodies: a GraphQL-shaped JSON error, and nothing of the body in the log.
    (err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
      if (err.type === 'entity.too.large') return jsonError(res, 413, 'PAYLOAD_TOO_LARGE', `request body over the ${settings.maxBodyBytes}-byte limit`);
      if (err.type === 'entity.parse.failed') return jsonError(res, 400, 'BAD_REQUEST', 'request body is not valid JSON');
      if (err.status && err.status < 500) return jsonError(res, err.status, 'BAD_REQUEST', err.message);
      next(err);
    },
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        res.locals.viewer = await authenticate(prisma, bearerOf(req), settings.allowAnonymousRead, tokens);
        next();
      } catch (err) {
        if (err instanceof GraphQLError && err.extensions.code === 'UNAUTHENTICATED') {
          res.set('www-authenticate', 'Bearer realm="apl-merge"');
          return jsonError(res, 401, 'UNAUTHENTICATED', err.message);
        }
        if (isDatabaseUnavailable(err)) {
          res.set('retry-after', '2');
          return jsonError(res, 503, 'SERVICE_UNAVAILABLE', DATABASE_UNAVAILABLE);
        }
        next(err);
      }
    },
    // Limits before Apollo's validation, whose overlapping-fields rule grows with the square of the aliases.
    (req: Request, res: Response, next: NextFunction) => {
      const body = (req.method === 'GET' ? req.query : req.body) as unknown;
      if (Array.isArray(body)) return jsonError(res, 400, 'BAD_REQUEST', 'batched requests are not accepted: send one operation per request');
      const { query, variables, operationName } = (body ?? {}) as { query?: unknown; variables?: unknown; operationName?: unknown };
      if (typeof query !== 'string') return next();
      let vars: Record<string, unknown> | undefined;
      try {
        vars = typeof variables === 'string' ? (JSON.parse(variables) as Record<string, unknown>) : (variables as Record<string, unknown> | undefined);
      } catch {
        return next();
      }
      const checked = documents.check(query, vars ?? undefined, typeof operationName === 'string' ? operationName : undefined);
      // A syntax error is Apollo's to report, in its own words.
      if ('refused' in checked) return res.status(400).json({ errors: [formatLimit(checked.refused)] });
      next();
    },
    expressMiddleware(apollo, { context: async ({ res }) => context((res.locals.viewer as Principal | undefined) ?? ANONYMOUS, performance.now()) }),
  );
  // Anything else thrown in a handler: a JSON error with an id to find it in the log, never a stack.
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    void _next;
    if (isDatabaseUnavailable(err)) return jsonError(res, 503, 'SERVICE_UNAVAILABLE', DATABASE_UNAVAILABLE);
    jsonError(res, 500, 'INTERNAL_SERVER_ERROR', `internal error (logged as ${logInternal(err)})`);
  });

  await new Promise<void>((resolve) => http.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/graphql`,
    port,
    stop: async () => {
      for (const connection of connections.values()) if (connection.expiry) clearTimeout(connection.expiry);
      await apollo.stop();
      await revocations?.close();
      await events?.close();
    },
  };
}

/** How stale the data roots used for redaction may be (a root an admin adds is redacted within this). */
const ROOTS_TTL_MS = 2000;

const DATABASE_UNAVAILABLE = 'the database is unavailable (restarting or unreachable); nothing was changed; try again shortly';

/** Internal errors reach the log with an id; the caller gets the id, not the server's text (SQL, paths, stacks). */
function maskInternal(formatted: GraphQLFormattedError, error?: unknown): GraphQLFormattedError {
  if (formatted.extensions?.code !== 'INTERNAL_SERVER_ERROR') return formatted;
  const original = error instanceof GraphQLError && error.originalError ? error.originalError : error;
  if (isDatabaseUnavailable(original)) return { ...formatted, message: DATABASE_UNAVAILABLE, extensions: { ...formatted.extensions, code: 'SERVICE_UNAVAILABLE' } };
  return { ...formatted, message: `internal error (logged as ${logInternal(original instanceof Error ? original : { message: formatted.message })})` };
}

/** Logs an internal error (message and the first frames of its stack) under a new id, which the caller is given. */
function logInternal(err: { message: string; stack?: string }): string {
  const id = randomUUID();
  console.error(`api: internal error ${id}: ${err.message}${err.stack ? `\n${err.stack.split('\n').slice(1, 4).join('\n')}` : ''}`);
  return id;
}

/** A limit's error as sent: message and extensions, without the HTTP details. */
function formatLimit(error: GraphQLError): GraphQLFormattedError {
  const { http: _http, ...extensions } = error.extensions as Record<string, unknown>;
  void _http;
  return { message: error.message, extensions };
}
