/** The GraphQL schema, built once from the resolvers and emitted to schema/schema.graphql. */
import 'reflect-metadata';
import { GraphQLSchema, printSchema } from 'graphql';
import { createPubSub } from '@graphql-yoga/subscription';
import { buildSchema } from 'type-graphql';
import { AnalysisResolver } from './analysis-resolver';
import { JobResolver } from './job-resolver';
import { MergeResolver } from './merge-resolver';
import { MethodResolver } from './method-resolver';
import { ModelResolver } from './model-resolver';

export async function buildApiSchema(): Promise<GraphQLSchema> {
  // Live events come from JobEventHub (Postgres LISTEN) through each subscription's own `subscribe`;
  // type-graphql still requires a PubSub to build subscription fields.
  return buildSchema({ resolvers: [ModelResolver, MergeResolver, AnalysisResolver, JobResolver, MethodResolver], validate: false, pubSub: createPubSub() });
}

export async function schemaText(): Promise<string> {
  return printSchema(await buildApiSchema()) + '\n';
}
