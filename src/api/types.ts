/** GraphQL object types of the registry (type-graphql). */
import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ModelKind } from '../store/generated/enums';

registerEnumType(ModelKind, { name: 'ModelKind', description: 'BASE, FINETUNE or MERGE' });

@ObjectType({ description: 'A stored checkpoint: where it is and what it holds' })
export class CheckpointType {
  @Field(() => ID) id: string;
  @Field() uri: string;
  @Field({ description: 'sha256 of the file (or of each shard, comma-separated)' }) sha256: string;
  @Field(() => Float) bytes: number;
  @Field() dtype: string;
  @Field(() => Float) parameterCount: number;
  @Field(() => Int) tensorCount: number;
}

@ObjectType({ description: 'A model in the registry' })
export class ModelType {
  @Field(() => ID) id: string;
  @Field() name: string;
  @Field(() => ModelKind) kind: ModelKind;
  @Field() architecture: string;
  @Field() createdAt: Date;
  checkpointId: string;
}

@ObjectType({ description: 'A model found by a lineage query, with its distance in generations' })
export class LineageNodeType {
  @Field(() => ID) id: string;
  @Field() name: string;
  @Field(() => ModelKind) kind: ModelKind;
  @Field(() => Int) depth: number;
}

@ObjectType()
export class LineageEdgeType {
  @Field(() => ID) parentId: string;
  @Field(() => ID) childId: string;
  @Field() relation: string;
  @Field(() => Float, { nullable: true }) weight: number | null;
}

@ObjectType({ description: 'Everything below a base model: nodes and the edges among them' })
export class LineageGraphType {
  @Field(() => [LineageNodeType]) nodes: LineageNodeType[];
  @Field(() => [LineageEdgeType]) edges: LineageEdgeType[];
}

@ObjectType()
export class ModelPage {
  @Field(() => [ModelType]) models: ModelType[];
  @Field() hasNextPage: boolean;
  @Field(() => ID, { nullable: true, description: 'pass as `after` to get the next page' }) endCursor: string | null;
}

@ObjectType({ description: 'A task: its classes and where its labelled data is' })
export class TaskType {
  @Field(() => ID) id: string;
  @Field() name: string;
  @Field(() => Int) classes: number;
  @Field() description: string;
  @Field() dataUri: string;
}

@ObjectType({ description: "A model's score on a task's split" })
export class EvaluationType {
  @Field(() => ID) id: string;
  @Field() split: string;
  @Field() metric: string;
  @Field(() => Float) value: number;
  @Field(() => TaskType) task: TaskType;
}

@ObjectType({ description: 'A parent or child link of a model' })
export class LinkType {
  @Field() relation: string;
  @Field(() => Float, { nullable: true }) weight: number | null;
  @Field(() => ModelType) model: ModelType;
}
