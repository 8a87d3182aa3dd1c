/** A checkpoint's tensor list (paged, from its headers) and model card, read from disk on request. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Arg, Field, FieldResolver, Float, Int, ObjectType, Resolver, Root } from 'type-graphql';
import { inspectCheckpoint } from '../engine/checkpoint/inspect';
import { ADAPTER_WEIGHTS, isLoraAdapter } from '../engine/checkpoint/lora';
import { checkpointPath } from '../store/registry';
import { checkFirst, Connection, connectionOf, connectionType, decodeCursor, encodeCursor } from './connections';
import { withErrorCodes } from './errors';
import { CheckpointType } from './types';

@ObjectType('Tensor', { description: 'A tensor of a checkpoint, as its safetensors header lists it' })
export class TensorType {
  @Field() name: string;
  @Field({ description: 'F32, F16, BF16, I64, …' }) dtype: string;
  @Field(() => [Int]) shape: number[];
  @Field(() => Float, { description: 'elements: the product of the shape' }) parameters: number;
  @Field({ description: 'the file holding it (a shard, for sharded checkpoints)' }) file: string;
  index: number;
}

const TensorConnection = connectionType(TensorType, 'Tensor', 'Tensors of a checkpoint in file order');

/** The model card beside a checkpoint is shown up to this many bytes. */
const CARD_LIMIT = 64 * 1024;

function weightsPath(uri: string): string {
  const path = checkpointPath(uri);
  return isLoraAdapter(path) ? join(path, ADAPTER_WEIGHTS) : path;
}

@Resolver(() => CheckpointType)
export class CheckpointResolver {
  @FieldResolver(() => TensorConnection, { description: 'its tensors in file order (name, dtype, shape), a page at a time, read from its headers' })
  async tensors(
    @Root() checkpoint: CheckpointType,
    @Arg('first', () => Int, { defaultValue: 100, description: '1 to 1000' }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | undefined,
    @Arg('nameContains', () => String, { nullable: true }) nameContains: string | undefined,
  ): Promise<Connection<TensorType>> {
    return withErrorCodes(async () => {
      checkFirst(first, 1000);
      const start = after ? Number(decodeCursor('tensor', after)) + 1 : 0;
      const all = inspectCheckpoint(weightsPath(checkpoint.uri), { hash: false }).tensors.map((t, index) => ({ ...t, parameters: t.shape.reduce((a, b) => a * b, 1), index }));
      const matching = nameContains ? all.filter((t) => t.name.includes(nameContains)) : all;
      const rest = matching.filter((t) => t.index >= start);
      return connectionOf(rest.slice(0, first + 1), first, (t) => encodeCursor('tensor', String(t.index)), matching.length, rest.length < matching.length);
    });
  }

  @FieldResolver(() => String, { nullable: true, description: 'the README.md beside the checkpoint (its model card), up to 64 KB; null when there is none' })
  modelCard(@Root() checkpoint: CheckpointType): string | null {
    const path = checkpointPath(checkpoint.uri);
    const directory = existsSync(path) && statSync(path).isDirectory() ? path : dirname(path);
    const card = join(directory, 'README.md');
    if (!existsSync(card)) return null;
    const text = readFileSync(card).subarray(0, CARD_LIMIT).toString('utf8');
    return text;
  }
}
