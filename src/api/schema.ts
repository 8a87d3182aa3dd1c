/** The GraphQL schema, built once from the resolvers and emitted to schema/schema.graphql. */
import 'reflect-metadata';
import { GraphQLSchema, printSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { ModelResolver } from './model-resolver';

export async function buildApiSchema(): Promise<GraphQLSchema> {
  return buildSchema({ resolvers: [ModelResolver], validate: false });
}

export async function schemaText(): Promise<string> {
  return printSchema(await buildApiSchema()) + '\n';
}
