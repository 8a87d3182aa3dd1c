/**
 * Limits on what one GraphQL document may ask for, checked after parsing and before the standard
 * validation (whose overlapping-fields rule is quadratic in the number of aliases) and before
 * anything runs: tokens (at parse time), depth, aliases, directives and cost. Depth, alias and
 * directive counting are GraphQL Armor's rules; cost is graphql-query-complexity's, where every
 * field costs 1 and a list multiplies what is selected below it by its `first` argument, or by
 * an assumed size for lists without one.
 */
import { DocumentNode, FragmentDefinitionNode, GraphQLError, GraphQLSchema, isListType, Kind, parse, SelectionSetNode, isNonNullType, GraphQLOutputType, validate, ValidationContext } from 'graphql';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { ComplexityEstimatorArgs, getComplexity } from 'graphql-query-complexity';
import { BoundedMap } from '../store/batching';

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

/** Types holding one page of a list whose length the parent field's `first` argument bounds: the connections. */
const isPageType = (name: string): boolean => name.endsWith('Connection');

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
  return problems[0] ?? checkIntrospection(document);
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
          // Introspection is answered from the schema in memory; its size is bounded by checkIntrospection.
          if (type.name.startsWith('__') || field.name.startsWith('__')) return 0;
          // A page's list is as long as the `first` of the field that returned the page, counted there.
          const size = typeof args.first === 'number' && args.first > 0 ? args.first : isList(field.type) && !isPageType(type.name) ? limits.assumedListSize : 1;
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

/** The list fields of the introspection types: nesting them multiplies the answer (types × fields × args …). */
const INTROSPECTION_LISTS = new Set(['types', 'fields', 'args', 'interfaces', 'possibleTypes', 'enumValues', 'inputFields', 'directives']);
/** The standard introspection query nests three (types → fields → args); a cyclic one nests many more. */
export const MAX_INTROSPECTION_LISTS = 3;

/** QUERY_TOO_COMPLEX when an introspection selection nests more list fields than the standard introspection query does. */
export function checkIntrospection(document: DocumentNode): GraphQLError | undefined {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  let deepest = 0;
  const walk = (set: SelectionSetNode | undefined, inIntrospection: boolean, lists: number, seen: ReadonlySet<string>): void => {
    for (const selection of set?.selections ?? []) {
      if (selection.kind === Kind.FIELD) {
        const inside = inIntrospection || selection.name.value.startsWith('__');
        const nested = lists + (inside && INTROSPECTION_LISTS.has(selection.name.value) ? 1 : 0);
        if (inside) deepest = Math.max(deepest, nested);
        walk(selection.selectionSet, inside, nested, seen);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        walk(selection.selectionSet, inIntrospection, lists, seen);
      } else if (!seen.has(selection.name.value)) {
        walk(fragments.get(selection.name.value)?.selectionSet, inIntrospection, lists, new Set([...seen, selection.name.value]));
      }
    }
  };
  for (const d of document.definitions) if (d.kind === Kind.OPERATION_DEFINITION) walk(d.selectionSet, false, 0, new Set());
  if (deepest <= MAX_INTROSPECTION_LISTS) return undefined;
  return limitError('QUERY_TOO_COMPLEX', `Introspection nests ${deepest} lists (types, fields, args, …); at most ${MAX_INTROSPECTION_LISTS}, as the standard introspection query does`, MAX_INTROSPECTION_LISTS, deepest);
}

export type CheckedDocument = { document: DocumentNode } | { refused: GraphQLError } | { syntaxError: GraphQLError };

/** Parses a document (stopping at the token limit) and checks its shape: what depends on the text alone. */
function parseAndCheckShape(schema: GraphQLSchema, query: string, limits: QueryLimits): CheckedDocument {
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: limits.maxTokens });
  } catch (err) {
    // graphql-js stops parsing at maxTokens with a syntax error ("more that N tokens", sic); say which limit it was.
    if (/Document contains more th(?:an|at) \d+ tokens/.test((err as Error).message)) return { refused: limitError('QUERY_TOO_LARGE', `Query token limit of ${limits.maxTokens} exceeded: parsing stopped`, limits.maxTokens) };
    return { syntaxError: new GraphQLError((err as Error).message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } }) };
  }
  const refused = checkQueryShape(schema, document, limits);
  return refused ? { refused } : { document };
}

/**
 * Parses a request's document (stopping at the token limit) and checks it against every limit, with
 * the request's variables: what the HTTP and WebSocket paths both run before anything else.
 */
export function checkDocument(schema: GraphQLSchema, query: string, variables: Record<string, unknown> | undefined, limits: QueryLimits, operationName?: string): CheckedDocument {
  const shaped = parseAndCheckShape(schema, query, limits);
  if (!('document' in shaped)) return shaped;
  const refused = checkQueryCost(schema, shaped.document, variables, limits, operationName);
  return refused ? { refused } : shaped;
}

/** Documents and variables larger than this are checked afresh each time rather than remembered. */
const MAX_REMEMBERED_CHARS = 8192;

/**
 * checkDocument with its answers remembered, for one schema and one set of limits: clients send
 * the same few documents again and again, and parsing and walking them was a tenth of what a
 * lineage request cost. The shape's answer depends on the text alone; the cost's on the text and
 * on the variables' numbers and booleans (a list's `first`, an `@include`), never on their strings
 * (ids, names), which are left out of its key. Parsed documents are shared, never changed.
 */
export class DocumentChecker {
  private readonly shapes = new BoundedMap<string, CheckedDocument>(500);
  private readonly costs = new BoundedMap<string, GraphQLError | null>(2000);

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly limits: QueryLimits,
  ) {}

  check(query: string, variables: Record<string, unknown> | undefined, operationName?: string): CheckedDocument {
    if (query.length > MAX_REMEMBERED_CHARS) return checkDocument(this.schema, query, variables, this.limits, operationName);
    let shaped = this.shapes.get(query);
    if (!shaped) this.shapes.set(query, (shaped = parseAndCheckShape(this.schema, query, this.limits)));
    if (!('document' in shaped)) return shaped;
    const numbers = JSON.stringify(variables ?? null, (_key, value: unknown) => (typeof value === 'string' ? '' : value));
    if (numbers.length > MAX_REMEMBERED_CHARS) {
      const refused = checkQueryCost(this.schema, shaped.document, variables, this.limits, operationName);
      return refused ? { refused } : shaped;
    }
    const key = `${operationName ?? ''}\u0000${numbers}\u0000${query}`;
    let refused = this.costs.get(key);
    if (refused === undefined) this.costs.set(key, (refused = checkQueryCost(this.schema, shaped.document, variables, this.limits, operationName) ?? null));
    return refused ? { refused } : shaped;
  }
}
