/** The Node interface: every entity has an id, and node(id:) finds it whatever its type. */
import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { GraphQLError } from 'graphql';
import { findNode } from '../store/nodes';
import { toAnalysis } from './analysis-resolver';
import { ApiContext } from './context';
import { toEvaluationRun } from './evaluation-resolver';
import { toMerge } from './merge-resolver';
import { toCheckpoint } from './model-resolver';
import { NodeInterface } from './node';

type Converter = (row: never) => object;
const CONVERT: Record<string, Converter> = {
  Checkpoint: toCheckpoint as Converter,
  Merge: toMerge as Converter,
  ImportanceAnalysis: toAnalysis as Converter,
  EvaluationRun: toEvaluationRun as Converter,
};

@Resolver()
export class NodeResolver {
  @Query(() => NodeInterface, { description: 'any entity by its id: a Model, Checkpoint, Task, Evaluation, Merge, ImportanceAnalysis or EvaluationRun' })
  async node(@Ctx() { prisma }: ApiContext, @Arg('id', () => ID) id: string): Promise<NodeInterface> {
    const found = await findNode(prisma, id);
    if (!found) throw new GraphQLError(`nothing has id ${id}`, { extensions: { code: 'NOT_FOUND' } });
    const convert = CONVERT[found.kind];
    const node = (convert ? convert(found.row as never) : found.row) as NodeInterface;
    return Object.assign(node, { __typename: found.kind });
  }
}
