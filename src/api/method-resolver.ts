/** The engine's merge methods and their parameters, for dashboards and scripts that build startMerge inputs. */
import { Field, Float, ObjectType, Query, Resolver } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { MERGE_METHODS } from '../engine/methods/registry';
import { ParameterDef } from '../engine/methods/types';

@ObjectType('MethodParameter', { description: "A parameter of a merge method, as in the YAML config's `parameters`" })
class MethodParameterType {
  @Field() name: string;
  @Field({ description: 'number, boolean or string' }) type: string;
  @Field(() => GraphQLJSON, { nullable: true, description: 'absent: the parameter is required' }) default: unknown;
  @Field() description: string;
  @Field(() => Float, { nullable: true }) min: number | null;
  @Field(() => Float, { nullable: true }) max: number | null;
  @Field(() => [String], { nullable: true }) choices: string[] | null;
}

@ObjectType('MergeMethod', { description: 'A merge method of the engine' })
class MergeMethodType {
  @Field() name: string;
  @Field() prettyName: string;
  @Field() reference: string;
  @Field({ description: 'whether baseModelId is required' }) needsBase: boolean;
  @Field({ description: 'whether the result depends on the seed' }) stochastic: boolean;
  @Field(() => [MethodParameterType]) globalParameters: MethodParameterType[];
  @Field(() => [MethodParameterType], { description: 'per model (each models[i].parameters)' }) modelParameters: MethodParameterType[];
}

const toParameter = (def: ParameterDef): MethodParameterType => ({
  name: def.name,
  type: def.type,
  default: def.default ?? null,
  description: def.description,
  min: def.min ?? null,
  max: def.max ?? null,
  choices: def.choices ? [...def.choices] : null,
});

@Resolver()
export class MethodResolver {
  @Query(() => [MergeMethodType], { description: 'every merge method startMerge accepts, with its parameters and defaults' })
  methods(): MergeMethodType[] {
    return MERGE_METHODS.map((m) => ({
      name: m.name,
      prettyName: m.prettyName,
      reference: m.reference,
      needsBase: m.needsBase,
      stochastic: m.stochastic,
      globalParameters: m.globalParameters.map(toParameter),
      modelParameters: m.modelParameters.map(toParameter),
    }));
  }
}
