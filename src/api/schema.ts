/** The GraphQL schema, built once from the resolvers and emitted to schema/schema.graphql. */
import 'reflect-metadata';
import { GraphQLSchema, printSchema } from 'graphql';
import { createPubSub } from '@graphql-yoga/subscription';
import { buildSchema } from 'type-graphql';
import { AdminResolver } from './admin-resolver';
import { AnalysisResolver } from './analysis-resolver';
import { CheckpointResolver } from './checkpoint-resolver';
import { EvaluationResolver } from './evaluation-resolver';
import { roleChecker } from './auth';
import { checkArgumentsOf } from './arguments';
import { JobResolver } from './job-resolver';
import { MergeResolver } from './merge-resolver';
import { MethodResolver } from './method-resolver';
import { ModelResolver } from './model-resolver';
import { NodeResolver } from './node-resolver';
import { WorkerResolver } from './worker-resolver';

export async function buildApiSchema(): Promise<GraphQLSchema> {
  // Live events come from JobEventHub (Postgres LISTEN) through each subscription's own `subscribe`;
  // type-graphql still requires a PubSub to build subscription fields.
  const schema = await buildSchema({
    resolvers: [ModelResolver, NodeResolver, CheckpointResolver, MergeResolver, AnalysisResolver, EvaluationResolver, JobResolver, MethodResolver, AdminResolver, WorkerResolver],
    validate: false,
    pubSub: createPubSub(),
    authChecker: roleChecker,
    // A field without @Authorized needs only a valid token (or anonymous reads), which every request has by then.
    authMode: 'error',
  });
  return checkArgumentsOf(schema);
}

export async function schemaText(): Promise<string> {
  return printSchema(await buildApiSchema()) + '\n';
}
