/**
 * The lists of the API as Relay connections, with their orderings and filters: models, tasks,
 * merges, analyses, evaluation runs, evaluations and job events.
 */
import { ArgsType, Field, ID, InputType, Int, registerEnumType } from 'type-graphql';
import { JobStatus, ModelKind } from '../store/generated/enums';
import { connectionType, decodeCursor } from './connections';
import { AnalysisType, EvaluationRunType, EvaluationType, MergeType, ModelType, TaskType } from './types';

export enum OrderDirection {
  ASC = 'asc',
  DESC = 'desc',
}
registerEnumType(OrderDirection, { name: 'OrderDirection' });

export enum ModelOrderField {
  CREATED_AT = 'createdAt',
  NAME = 'name',
}
registerEnumType(ModelOrderField, { name: 'ModelOrderField' });

export enum JobOrderField {
  CREATED_AT = 'createdAt',
  UPDATED_AT = 'updatedAt',
}
registerEnumType(JobOrderField, { name: 'JobOrderField' });

export enum TaskOrderField {
  NAME = 'name',
  CREATED_AT = 'createdAt',
}
registerEnumType(TaskOrderField, { name: 'TaskOrderField' });

@InputType({ description: 'default: CREATED_AT ASC (registration order); ties by id' })
export class ModelOrder {
  @Field(() => ModelOrderField) field: ModelOrderField;
  @Field(() => OrderDirection, { defaultValue: OrderDirection.ASC }) direction: OrderDirection;
}

@InputType({ description: 'default: CREATED_AT DESC (newest first); ties by id' })
export class JobOrder {
  @Field(() => JobOrderField) field: JobOrderField;
  @Field(() => OrderDirection, { defaultValue: OrderDirection.DESC }) direction: OrderDirection;
}

@InputType({ description: 'default: NAME ASC; ties by id' })
export class TaskOrder {
  @Field(() => TaskOrderField) field: TaskOrderField;
  @Field(() => OrderDirection, { defaultValue: OrderDirection.ASC }) direction: OrderDirection;
}

@InputType()
export class ModelFilterInput {
  @Field(() => ModelKind, { nullable: true }) kind?: ModelKind;
  @Field({ nullable: true, description: 'case-insensitive' }) nameContains?: string;
  @Field({ nullable: true }) architecture?: string;
  @Field(() => [String], { nullable: true, description: 'models with every one of these tags' }) tags?: string[];
  @Field(() => ID, { nullable: true, description: 'the base and every model below it' }) baseId?: string;
  @Field({ nullable: true, description: 'registered (or merged) by the token of this name' }) createdBy?: string;
  @Field({ nullable: true, description: 'include archived models (default false)' }) includeArchived?: boolean;
}

@InputType()
export class JobFilterInput {
  @Field(() => JobStatus, { nullable: true }) status?: JobStatus;
  @Field({ nullable: true, description: 'requested by the token of this name' }) createdBy?: string;
}

export const ModelConnection = connectionType(ModelType, 'Model', 'Models, a page at a time');
export const TaskConnection = connectionType(TaskType, 'Task', 'Tasks, a page at a time');
export const MergeConnection = connectionType(MergeType, 'Merge', 'Merges, a page at a time');
export const ImportanceAnalysisConnection = connectionType(AnalysisType, 'ImportanceAnalysis', 'Importance analyses, a page at a time');
export const EvaluationRunConnection = connectionType(EvaluationRunType, 'EvaluationRun', 'Evaluation runs, a page at a time');
export const EvaluationConnection = connectionType(EvaluationType, 'Evaluation', "A model's scores, by task and split");

/** A model-facing order as the store's. */
export const orderOf = <F extends string>(order: { field: F; direction: OrderDirection } | undefined) => (order ? { field: order.field, direction: order.direction } : undefined);

/** The arguments every list of jobs takes. */
@ArgsType()
export class JobListArgs {
  @Field(() => Int, { defaultValue: 50, description: '1 to 500' }) first: number;
  @Field(() => String, { nullable: true }) after?: string;
  @Field(() => JobFilterInput, { nullable: true }) filter?: JobFilterInput;
  @Field(() => JobOrder, { nullable: true }) orderBy?: JobOrder;
}

/** A job list's arguments as the store's page request, its cursor decoded for `kind`. */
export const jobPage = (args: JobListArgs, kind: string) => ({ first: args.first, after: args.after && decodeCursor(kind, args.after), orderBy: orderOf(args.orderBy) });
