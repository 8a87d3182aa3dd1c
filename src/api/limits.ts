/**
 * Limits on what one GraphQL document may ask for, checked after parsing and before the standard
 * validation (whose overlapping-fields rule is quadratic in the number of aliases) and before
 * anything runs: tokens (at parse time), depth, aliases, directives and cost. Depth, alias and
 * directive counting are GraphQL Armor's rules; cost is graphql-query-complexity's, where every
 * field costs 1 and a list multiplies what is selected below it by its `first` argument, or by
 * an assumed size for lists without one.
 */
import { DocumentNode, GraphQLError, GraphQLSchema, isListType, isNonNullType, GraphQLOutputType, validate, ValidationContext } from 'graphql';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { ComplexityEstimatorArgs, getComplexity } from 'graphql-query-complexity';

export interface QueryLimits {
  /** Lexical tokens in a document (refused while parsing). */
  maxTokens: number;
  /** Nesting of selections. */
  maxDepth: number;
  maxAliases: number;
  maxDirectives: number;
  /** Estimated fields resolved (lists count as their page size). */
  maxCost: number;
  /** The size assumed for a list field without a `first` argument (children, evaluations, …). */
  assumedListSize: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  maxTokens: 4000,
  maxDepth: 10,
  maxAliases: 30,
  maxDirectives: 20,
  maxCost: 20_000,
  assumedListSize: 20,
};

const limitError = (code: string, message: string, limit: number, found?: number) =>
  new GraphQLError(message, { extensions: { code, limit, ...(found !== undefined ? { found } : {}), http: { status: 400 } } });

/** Types holding one page of a list whose length the parent field's `first` argument bounds. */
const PAGE_TYPES = new Set(['ModelPage']);

const isList = (type: GraphQLOutputType): boolean => isListType(isNonNullType(type) ? type.ofType : type);

/** The first of the depth, alias and directive limits the document exceeds, as an error with a code and the limit. */
export function checkQueryShape(schema: GraphQLSchema, document: DocumentNode, limits: QueryLimits): GraphQLError | undefined {
  const problems: GraphQLError[] = [];
  const collect = (code: string, limit: number) => [
    (_: ValidationContext | null, error: GraphQLError) => {
      const found = Number(/found (\d+)/.exec(error.message)?.[1]);
      problems.push(limitError(code, error.message.replace(/^Syntax Error: /, ''), limit, Number.isFinite(found) ? found : undefined));
    },
  ];
  validate(schema, document, [
    maxDepthRule({ n: limits.maxDepth, onReject: collect('QUERY_TOO_DEEP', limits.maxDepth), propagateOnRejection: false }),
    maxAliasesRule({ n: limits.maxAliases, onReject: collect('TOO_MANY_ALIASES', limits.maxAliases), propagateOnRejection: false }),
    maxDirectivesRule({ n: limits.maxDirectives, onReject: collect('TOO_MANY_DIRECTIVES', limits.maxDirectives), propagateOnRejection: false }),
  ]);
  return problems[0];
}

/** QUERY_TOO_COMPLEX when the document's estimated cost, with these variables, is over the limit. */
export function checkQueryCost(schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown> | undefined, limits: QueryLimits, operationName?: string): GraphQLError | undefined {
  let cost: number;
  try {
    cost = getComplexity({
      schema,
      query: document,
      variables,
      operationName,
      estimators: [
        ({ type, field, args, childComplexity }: ComplexityEstimatorArgs) => {
          // A page's list is as long as the `first` of the field that returned the page, counted there.
          const size = typeof args.first === 'number' && args.first > 0 ? args.first : isList(field.type) && !PAGE_TYPES.has(type.name) ? limits.assumedListSize : 1;
          return 1 + size * childComplexity;
        },
      ],
    });
  } catch {
    // An invalid document (unknown field, bad variable): the standard validation that follows says what is wrong.
    return undefined;
  }
  if (cost > limits.maxCost) return limitError('QUERY_TOO_COMPLEX', `Query cost limit of ${limits.maxCost} exceeded, estimated ${cost} (every field costs 1; a list multiplies what it selects by its first argument, or by ${limits.assumedListSize})`, limits.maxCost, cost);
  return undefined;
}
