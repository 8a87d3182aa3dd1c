/**
 * The HTTP and WebSocket server: Apollo Server over express at /graphql, and graphql-ws on the same
 * path for subscriptions, both on one schema. The WebSocket server is closed when HTTP drains.
 */
import 'reflect-metadata';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { PgBoss } from 'pg-boss';
import { PrismaClient } from '../store/client';
import { ApiContext } from './context';
import { JobEventHub } from './event-hub';
import { buildApiSchema } from './schema';

export interface ApiServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface ApiServerOptions {
  prisma: PrismaClient;
  dataRoots: readonly string[];
  /** Enables live events (LISTEN on this database). */
  databaseUrl?: string;
  /** Enables starting and cancelling jobs. */
  queue?: PgBoss;
  port?: number;
  host?: string;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const schema = await buildApiSchema();
  const events = options.databaseUrl ? await JobEventHub.start(options.databaseUrl) : undefined;
  const app = express();
  const http: Server = createServer(app);
  const wss = new WebSocketServer({ server: http, path: '/graphql' });
  const context = (): ApiContext => ({ prisma: options.prisma, dataRoots: options.dataRoots, events, queue: options.queue });
  const wsCleanup = useServer({ schema, context }, wss);
  const apollo = new ApolloServer<ApiContext>({
    schema,
    // Introspection stays on in production: dashboards and scripts discover the schema with it.
    introspection: true,
    // The process that starts the server stops it, in its own order; Apollo must not act on signals itself.
    stopOnTerminationSignals: false,
    plugins: [
      ApolloServerPluginCacheControlDisabled(),
      ApolloServerPluginDrainHttpServer({ httpServer: http }),
      { async serverWillStart() { return { async drainServer() { await wsCleanup.dispose(); } }; } },
    ],
  });
  await apollo.start();
  app.use('/graphql', express.json({ limit: '1mb' }), expressMiddleware(apollo, { context: async () => context() }));
  await new Promise<void>((resolve) => http.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/graphql`,
    port,
    stop: async () => {
      await apollo.stop();
      await events?.close();
    },
  };
}
