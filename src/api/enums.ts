/**
 * The schema's enums for what the store keeps as strings: GraphQL names in capitals, the stored
 * lower-case values inside (so resolvers pass rows through, and the schema checks inputs).
 */
import { registerEnumType } from 'type-graphql';

export enum PartitionLevelEnum {
  MODEL = 'model',
  LAYER = 'layer',
  ROW = 'row',
  UNIT = 'unit',
}
registerEnumType(PartitionLevelEnum, {
  name: 'PartitionLevel',
  description: "How parameters are grouped into partitions: the whole model, a layer (tensor group), a row of a matrix, or a hidden unit (its incoming rows and the column of the weight that reads it)",
});

export enum EstimatorEnum {
  EXACT = 'exact',
  GRADIENT = 'gradient',
}
registerEnumType(EstimatorEnum, { name: 'Estimator', description: 'EXACT: causal intervention (each partition set back to the base); GRADIENT: its first-order approximation' });

export enum JobKindEnum {
  MERGE = 'merge',
  ANALYSIS = 'analysis',
  EVALUATION = 'evaluation',
}
registerEnumType(JobKindEnum, { name: 'JobKind' });

export enum LineageRelationEnum {
  FINETUNE = 'finetune',
  MERGE = 'merge',
  MERGE_BASE = 'merge-base',
}
registerEnumType(LineageRelationEnum, { name: 'LineageRelation', description: 'FINETUNE: trained (or adapted) from the parent; MERGE: the parent is one of the merged models; MERGE_BASE: the base of the merge' });

export enum OutputDtypeEnum {
  FLOAT32 = 'float32',
  FLOAT16 = 'float16',
  BFLOAT16 = 'bfloat16',
}
registerEnumType(OutputDtypeEnum, { name: 'OutputDtype', description: 'The float type a merge writes' });
