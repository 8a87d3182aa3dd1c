/** Turns store errors into GraphQL errors whose `extensions.code` says what kind of problem it is. */
import { GraphQLError } from 'graphql';
import { RegistryError } from '../store/registry';

export async function withErrorCodes<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof RegistryError) throw new GraphQLError(err.message, { extensions: { code: err.code } });
    throw err;
  }
}
