/** The Node interface every entity type implements (its own module: the object types import it). */
import { Field, ID, InterfaceType } from 'type-graphql';

@InterfaceType('Node', { description: 'An entity of the registry, found by its id with node(id:)', resolveType: (value: { __typename?: string }) => value.__typename })
export abstract class NodeInterface {
  @Field(() => ID) id: string;
}
