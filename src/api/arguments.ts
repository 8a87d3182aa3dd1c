/**
 * Checks on every argument before any resolver runs, so that a malformed value is refused as
 * BAD_USER_INPUT naming the argument instead of reaching the database: every ID argument (and ID
 * field of an input object) names a row, and row ids are UUIDs (event ids, sequence numbers, are
 * the exception); no text may hold a NUL character, which PostgreSQL cannot store; and no number
 * may be infinite (JSON's 1e400), which would be stored as null.
 */
import { defaultFieldResolver, GraphQLArgument, GraphQLError, GraphQLID, GraphQLInputType, GraphQLSchema, isInputObjectType, isListType, isNonNullType, isObjectType } from 'graphql';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** ID arguments that are not row ids. */
const NOT_ROW_IDS = new Set(['afterEventId']);

const badInput = (path: string, reason: string) => new GraphQLError(`${path}: ${reason}`, { extensions: { code: 'BAD_USER_INPUT', argument: path } });

/** NUL anywhere in a value, JSON arguments included; and numbers JSON cannot hold (1e400 parses as Infinity). */
function checkText(value: unknown, path: string): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw badInput(path, `${value} is not a finite number (a literal such as 1e400 is beyond float64)`);
  } else if (typeof value === 'string') {
    if (value.includes('\u0000')) throw badInput(path, 'contains a NUL character');
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => checkText(item, `${path}[${i}]`));
  } else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      checkText(key, `${path} (a key)`);
      checkText(item, `${path}.${key}`);
    }
  }
}

function check(type: GraphQLInputType, value: unknown, path: string): void {
  if (value === null || value === undefined) return;
  checkText(value, path);
  if (isNonNullType(type)) return check(type.ofType, value, path);
  if (isListType(type)) {
    if (Array.isArray(value)) value.forEach((item, i) => check(type.ofType, item, `${path}[${i}]`));
    return;
  }
  if (isInputObjectType(type)) {
    for (const [name, field] of Object.entries(type.getFields())) check(field.type, (value as Record<string, unknown>)[name], `${path}.${name}`);
    return;
  }
  if (type === GraphQLID && !UUID.test(String(value))) {
    throw badInput(path, `"${String(value).slice(0, 80)}" is not an id (ids are UUIDs such as 3faebb57-6ce4-4d9b-91d7-d65a60b7d11a)`);
  }
}

function checkFieldArguments(fieldArgs: readonly GraphQLArgument[], args: Record<string, unknown>): void {
  for (const arg of fieldArgs) {
    if (NOT_ROW_IDS.has(arg.name)) checkText(args[arg.name], arg.name);
    else check(arg.type, args[arg.name], arg.name);
  }
}

/**
 * Puts the checks in front of the resolver of every field that takes arguments (in place). Only
 * those: a type-graphql global middleware would wrap every field of every object in an async
 * call, which made a lineage graph of a few hundred nodes cost a promise per scalar.
 */
export function checkArgumentsOf(schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      if (field.args.length === 0) continue;
      const resolve = field.resolve ?? defaultFieldResolver;
      const fieldArgs = field.args;
      field.resolve = (source, args: Record<string, unknown>, context, info) => {
        checkFieldArguments(fieldArgs, args);
        return resolve(source, args, context, info);
      };
      // Subscriptions read their arguments in `subscribe`.
      if (field.subscribe) {
        const subscribe = field.subscribe;
        field.subscribe = (source, args: Record<string, unknown>, context, info) => {
          checkFieldArguments(fieldArgs, args);
          return subscribe(source, args, context, info);
        };
      }
    }
  }
  return schema;
}
