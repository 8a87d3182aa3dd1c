/**
 * Read queries over HTTP run as compiled JavaScript (graphql-jit) instead of graphql-js's
 * interpreter, which walks the document for every field of every row: for a lineage graph of a
 * hundred nodes that walk cost more than the database read. A document is compiled once, the first
 * time it runs, and kept while Apollo keeps the parsed document (keyed by the document object, so
 * both caches forget together).
 *
 * graphql-jit differs from graphql-js in corners this schema reaches, so only documents clear of
 * them are compiled; every other one runs in graphql-js as before (the answers are the same either
 * way; test/compiled-execution.test.ts runs both on the same queries):
 * - its variable coercion drops the default of a non-null input field (`level: PartitionLevel! = ROW`)
 *   and words errors its own way: variables are always coerced by graphql-js, and only documents
 *   whose variables are built-in scalars (which coerce to themselves) are compiled;
 * - it calls an abstract type's resolveType synchronously, and type-graphql's is async: no
 *   interface or union may be selected;
 * - mutations (few, and their inputs are objects), introspection and directives stay with graphql-js.
 *
 * Apollo Server 5 takes a custom executor only through its `gateway` option (its migration guide's
 * way to replace the removed `executor` option); the schema is the one served, so everything
 * Apollo does around execution (parsing, validation, plugins, error formatting) is unchanged.
 */
import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import {
  DocumentNode,
  execute,
  ExecutionResult,
  getNamedType,
  getOperationAST,
  getVariableValues,
  GraphQLSchema,
  isAbstractType,
  isSpecifiedScalarType,
  OperationDefinitionNode,
  TypeInfo,
  typeFromAST,
  visit,
  visitWithTypeInfo,
  BREAK,
} from 'graphql';
import { compileQuery, CompiledQuery, isCompiledQuery } from 'graphql-jit';

/** Whether graphql-jit answers `operation` of `document` exactly as graphql-js would (see the file's comment). */
export function compilable(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode): boolean {
  if (operation.operation !== 'query') return false;
  for (const definition of operation.variableDefinitions ?? []) {
    const type = typeFromAST(schema, definition.type);
    if (!type || !isSpecifiedScalarType(getNamedType(type))) return false;
  }
  const typeInfo = new TypeInfo(schema);
  let clear = true;
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Directive() {
        clear = false;
        return BREAK;
      },
      Field(node) {
        const type = typeInfo.getType();
        if ((node.name.value.startsWith('__') && node.name.value !== '__typename') || !type || isAbstractType(getNamedType(type))) {
          clear = false;
          return BREAK;
        }
        return undefined;
      },
    }),
  );
  return clear;
}

type Plan = { compiled: CompiledQuery; operation: OperationDefinitionNode } | { interpreted: true };

/** An executor that runs compilable documents compiled and the rest with graphql-js. */
export function documentExecutor(schema: GraphQLSchema): (document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown> | undefined, contextValue: unknown) => Promise<ExecutionResult> {
  const plans = new WeakMap<DocumentNode, Map<string, Plan>>();
  const planFor = (document: DocumentNode, operationName: string | undefined): Plan => {
    let byOperation = plans.get(document);
    if (!byOperation) plans.set(document, (byOperation = new Map()));
    let plan = byOperation.get(operationName ?? '');
    if (!plan) {
      // No operation of that name (or several and no name): graphql-js says so.
      const operation = getOperationAST(document, operationName);
      const compiled = operation && compilable(schema, document, operation) ? compileQuery(schema, document, operationName, { disablingCapturingStackErrors: true }) : undefined;
      plan = operation && compiled && isCompiledQuery(compiled) ? { compiled, operation } : { interpreted: true };
      byOperation.set(operationName ?? '', plan);
    }
    return plan;
  };
  return async (document, operationName, variables, contextValue) => {
    const plan = planFor(document, operationName);
    if (!('compiled' in plan)) return execute({ schema, document, operationName, variableValues: variables, contextValue });
    const coerced = getVariableValues(schema, plan.operation.variableDefinitions ?? [], variables ?? {});
    if (coerced.errors) return { errors: coerced.errors };
    return plan.compiled.query(undefined, contextValue, coerced.coerced);
  };
}

/** The `gateway` Apollo Server is given: the served schema, executed by documentExecutor. */
export function compiledExecutionGateway(schema: GraphQLSchema): GatewayInterface {
  const run = documentExecutor(schema);
  const executor: GatewayExecutor = (request) => run(request.document, request.request.operationName, request.request.variables, request.context);
  return {
    load: async () => ({ executor }),
    onSchemaLoadOrUpdate: (callback) => {
      callback({ apiSchema: schema, coreSupergraphSdl: '' });
      return () => undefined;
    },
    stop: async () => undefined,
  };
}
