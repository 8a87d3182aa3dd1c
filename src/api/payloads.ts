/**
 * What mutations return: a payload type per mutation holding what it made or changed (as GitHub's
 * API does). A mutation that cannot be done answers with a GraphQL error instead, whose
 * extensions carry the code (BAD_USER_INPUT, NOT_FOUND, CONFLICT, FORBIDDEN, RATE_LIMITED, …) and,
 * for a bad argument, the argument it names.
 */
import { ClassType, Field, ObjectType } from 'type-graphql';

/** `${name}Payload` with one field `field` of `type`. */
export function payloadType<T extends object>(name: string, field: string, type: ClassType<T>, description: string): ClassType<Record<string, T>> {
  @ObjectType(`${name}Payload`, { description })
  class Payload {}
  Field(() => type)(Payload.prototype, field);
  return Payload as unknown as ClassType<Record<string, T>>;
}
