/** GraphQL object types of the registry (type-graphql). */
import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { NodeInterface } from './node';
import { EstimatorEnum, JobKindEnum, LineageRelationEnum, PartitionLevelEnum } from './enums';
import { GraphQLJSONObject } from 'graphql-scalars';
import { JobStatus, ModelKind, TaskKind } from '../store/generated/enums';

registerEnumType(ModelKind, { name: 'ModelKind', description: 'BASE, FINETUNE or MERGE' });
registerEnumType(JobStatus, { name: 'JobStatus' });
registerEnumType(TaskKind, { name: 'TaskKind', description: 'CLASSIFICATION: one class label per example (a classifier head scores it); LANGUAGE_MODEL: token labels (a language model scores it: exact match of the completion)' });

@ObjectType('Checkpoint', { implements: NodeInterface, description: 'A stored checkpoint: where it is and what it holds' })
export class CheckpointType {
  @Field(() => ID) id: string;
  @Field({ description: 'file:// URI for admins; data://ROOT/relative for everyone else' }) uri: string;
  @Field({ description: 'sha256 of the file (or of each shard, comma-separated)' }) sha256: string;
  @Field(() => Float) bytes: number;
  @Field() dtype: string;
  @Field(() => Float) parameterCount: number;
  @Field(() => Int) tensorCount: number;
}

@ObjectType('Model', { implements: NodeInterface, description: 'A model in the registry' })
export class ModelType {
  @Field(() => ID) id: string;
  @Field() name: string;
  @Field(() => ModelKind) kind: ModelKind;
  @Field() architecture: string;
  @Field() createdAt: Date;
  @Field() description: string;
  @Field(() => [String]) tags: string[];
  @Field(() => Date, { nullable: true, description: 'set: hidden from listings unless asked for (filter.includeArchived)' }) archivedAt: Date | null;
  @Field(() => String, { nullable: true, description: 'the name of the API token that created it (null: created before tokens, or by the server itself)' }) createdBy: string | null;
  checkpointId: string;
}

@ObjectType('LineageNode', { description: 'A model found by a lineage query, with its distance in generations' })
export class LineageNodeType {
  @Field(() => ID) id: string;
  @Field() name: string;
  @Field(() => ModelKind) kind: ModelKind;
  @Field(() => Int) depth: number;
}

@ObjectType('LineageEdge')
export class LineageEdgeType {
  @Field(() => ID) parentId: string;
  @Field(() => ID) childId: string;
  @Field(() => LineageRelationEnum) relation: string;
  @Field(() => Float, { nullable: true }) weight: number | null;
}

@ObjectType('LineageGraph', { description: 'Everything below a base model: nodes and the edges among them' })
export class LineageGraphType {
  @Field(() => [LineageNodeType]) nodes: readonly LineageNodeType[];
  @Field(() => [LineageEdgeType]) edges: readonly LineageEdgeType[];
}

@ObjectType('Task', { implements: NodeInterface, description: 'A task: its classes and where its labelled data is' })
export class TaskType {
  @Field(() => ID) id: string;
  @Field() name: string;
  @Field(() => TaskKind, { description: 'read from its data when it was registered' }) kind: TaskKind;
  @Field(() => Int, { description: 'classes, or the vocabulary size its token labels need (the largest token id + 1)' }) classes: number;
  @Field() description: string;
  @Field({ description: 'file:// URI for admins; data://ROOT/relative for everyone else' }) dataUri: string;
  @Field(() => String, { nullable: true, description: 'the name of the API token that created it (null: created before tokens, or by the server itself)' }) createdBy: string | null;
}

@ObjectType('Evaluation', { implements: NodeInterface, description: "A model's score on a task's split" })
export class EvaluationType {
  @Field(() => ID) id: string;
  @Field() split: string;
  @Field() metric: string;
  @Field(() => Float) value: number;
  @Field(() => TaskType) task: TaskType;
}

@ObjectType('ModelLink', { description: 'A parent or child link of a model' })
export class LinkType {
  @Field(() => LineageRelationEnum) relation: string;
  @Field(() => Float, { nullable: true }) weight: number | null;
  @Field(() => ModelType) model: ModelType;
}

@ObjectType('MergeInput', { description: 'One input of a merge: a model and its parameters' })
export class MergeInputType {
  @Field(() => Int) position: number;
  @Field({ description: 'true for the base model the task vectors are taken against' }) isBase: boolean;
  @Field(() => GraphQLJSONObject, { description: 'per-model parameters as requested' }) parameters: Record<string, unknown>;
  @Field(() => GraphQLJSONObject, { description: "per-model parameters in force: those requested, the rest at the method's defaults" }) resolvedParameters: Record<string, unknown>;
  @Field(() => ModelType) model: ModelType;
}

@ObjectType('Merge', { implements: NodeInterface, description: 'A merge job and, once COMPLETED, the model it produced' })
export class MergeType {
  @Field(() => ID) id: string;
  @Field() method: string;
  @Field(() => GraphQLJSONObject, { description: 'global parameters (and dtype) as requested' }) parameters: Record<string, unknown>;
  @Field(() => Float, { description: 'seed of every random choice of the merge' }) seed: number;
  @Field(() => JobStatus) status: JobStatus;
  @Field(() => Int, { description: 'progress within the current phase' }) done: number;
  @Field(() => Int) total: number;
  @Field(() => String, { nullable: true }) error: string | null;
  @Field(() => String, { nullable: true, description: 'name asked for the merged model' }) outputName: string | null;
  @Field(() => GraphQLJSONObject, { nullable: true, description: 'backend, seconds, tensors, sha256 and the method\'s preparation report' }) result: Record<string, unknown> | null;
  @Field(() => Int, { description: 'attempts started (more than one after a worker was lost)' }) attempts: number;
  @Field() createdAt: Date;
  @Field() updatedAt: Date;
  @Field(() => String, { nullable: true, description: 'the name of the API token that created it (null: created before tokens, or by the server itself)' }) createdBy: string | null;
  outputModelId: string | null;
}

@ObjectType('ImportanceAnalysis', { implements: NodeInterface, description: 'An importance analysis of a model on a task, and its artifact once COMPLETED' })
export class AnalysisType {
  @Field(() => ID) id: string;
  @Field(() => PartitionLevelEnum) level: string;
  @Field(() => EstimatorEnum) estimator: string;
  @Field(() => JobStatus) status: JobStatus;
  @Field(() => Int) done: number;
  @Field(() => Int) total: number;
  @Field(() => String, { nullable: true }) error: string | null;
  @Field(() => String, { nullable: true, description: 'the importance artifact (safetensors), with its JSON summary beside it' }) artifactUri: string | null;
  @Field(() => GraphQLJSONObject, { nullable: true, description: 'per layer: mean, spread and top partitions' }) summary: Record<string, unknown> | null;
  @Field(() => GraphQLJSONObject, { nullable: true }) result: Record<string, unknown> | null;
  @Field(() => Int) attempts: number;
  @Field() createdAt: Date;
  @Field() updatedAt: Date;
  @Field(() => String, { nullable: true, description: 'the name of the API token that created it (null: created before tokens, or by the server itself)' }) createdBy: string | null;
  modelId: string;
  taskId: string;
  baseModelId: string | null;
}

@ObjectType('CancelJobPayload', { description: 'A job that was cancelled' })
export class CancelledJobType {
  @Field(() => ID) id: string;
  @Field(() => JobKindEnum) kind: string;
  @Field(() => JobStatus) status: JobStatus;
}

@ObjectType('RetryJobPayload', { description: 'A job queued again' })
export class RetriedJobType {
  @Field(() => ID) id: string;
  @Field(() => JobKindEnum) kind: string;
  @Field(() => JobStatus) status: JobStatus;
}

@ObjectType('DeleteModelPayload', { description: 'A model deleted from the registry (its files stay where they are)' })
export class DeletedModelType {
  @Field(() => ID) id: string;
  @Field() name: string;
}

@ObjectType('JobTiming', { description: "When a job was queued, started (its latest attempt) and ended, and by which worker" })
export class JobTimingType {
  @Field() queuedAt: Date;
  @Field(() => Date, { nullable: true, description: 'when the latest attempt started (null: not started)' }) startedAt: Date | null;
  @Field(() => Date, { nullable: true, description: 'when it COMPLETED, FAILED or was CANCELLED' }) finishedAt: Date | null;
  @Field(() => Float, { nullable: true, description: 'from the latest start to the end (or to now, while RUNNING)' }) durationSeconds: number | null;
  @Field(() => Float, { description: 'from queued to started (or to now, while QUEUED)' }) waitSeconds: number;
  @Field(() => Int, { description: 'attempts started' }) attempts: number;
  @Field(() => String, { nullable: true, description: 'the worker that ran the latest attempt' }) worker: string | null;
}

/** A job row's timing, as the schema shows it. */
export function jobTiming(row: { createdAt: Date; startedAt: Date | null; finishedAt: Date | null; attempts: number; lastWorker: string | null; status: string }, now = new Date()): JobTimingType {
  const end = row.finishedAt ?? (row.status === 'RUNNING' ? now : null);
  const durationSeconds = row.startedAt && end ? (end.getTime() - row.startedAt.getTime()) / 1000 : null;
  const waitSeconds = ((row.startedAt ?? row.finishedAt ?? now).getTime() - row.createdAt.getTime()) / 1000;
  return { queuedAt: row.createdAt, startedAt: row.startedAt, finishedAt: row.finishedAt, durationSeconds, waitSeconds, attempts: row.attempts, worker: row.lastWorker };
}

@ObjectType('EvaluationRun', { implements: NodeInterface, description: 'A job scoring a model on the test and OOD splits of its tasks; COMPLETED, its scores are the model\'s evaluations' })
export class EvaluationRunType {
  @Field(() => ID) id: string;
  @Field(() => JobStatus) status: JobStatus;
  @Field(() => Int, { description: 'tasks scored so far' }) done: number;
  @Field(() => Int) total: number;
  @Field(() => String, { nullable: true }) error: string | null;
  @Field(() => GraphQLJSONObject, { nullable: true, description: 'backend, seconds and the scores written' }) result: Record<string, unknown> | null;
  @Field(() => Int) attempts: number;
  @Field() createdAt: Date;
  @Field() updatedAt: Date;
  @Field(() => String, { nullable: true, description: 'the name of the API token that created it (null: created before tokens, or by the server itself)' }) createdBy: string | null;
  modelId: string;
  taskId: string | null;
}

@ObjectType('PartitionScore', { description: "A partition and its score" })
export class PartitionScoreType {
  @Field() partition: string;
  @Field(() => Float) value: number;
}

@ObjectType('LayerImportance', { description: "One layer's (tensor group's) partitions: statistics of one importance score, for a heat map" })
export class LayerImportanceType {
  @Field() layer: string;
  @Field(() => Int) partitions: number;
  @Field(() => Float) mean: number;
  @Field(() => Float, { description: 'standard deviation' }) spread: number;
  @Field(() => Float) min: number;
  @Field(() => Float) max: number;
  @Field(() => [PartitionScoreType], { description: 'the highest-scoring partitions, highest first' }) top: PartitionScoreType[];
}

@ObjectType('HistogramBin', { description: 'A histogram bin of partition scores: [lower, upper), the last one closed' })
export class HistogramBinType {
  @Field(() => Float) lower: number;
  @Field(() => Float) upper: number;
  @Field(() => Int) count: number;
}

export enum ImportanceScore {
  LOSS_INCREASE = 'loss_increase',
  KL = 'kl',
  GRADIENT_SIGNED = 'gradient_signed',
  GRADIENT_ABSOLUTE = 'gradient_absolute',
}
registerEnumType(ImportanceScore, { name: 'ImportanceScore', description: 'loss increase and KL (exact intervention), or the gradient approximation (signed, absolute)' });

@ObjectType('LeaderboardScore', { description: "A model's score on a task beside the best fine-tune's (normalised accuracy)" })
export class LeaderboardScoreType {
  @Field(() => TaskType) task: TaskType;
  @Field(() => Float) value: number;
  @Field(() => Float, { nullable: true, description: "the best FINETUNE's score on this task and split" }) bestFineTune: number | null;
  @Field(() => Float, { nullable: true, description: 'value / bestFineTune' }) normalized: number | null;
  taskId: string;
}

@ObjectType('LeaderboardRow', { description: 'A row of a base\'s leaderboard' })
export class LeaderboardRowType {
  @Field(() => ModelType) model: ModelType;
  @Field(() => [LeaderboardScoreType]) scores: LeaderboardScoreType[];
  @Field(() => Float) average: number;
  @Field(() => Float, { nullable: true, description: 'mean of the normalised scores' }) normalizedAverage: number | null;
  modelId: string;
}
