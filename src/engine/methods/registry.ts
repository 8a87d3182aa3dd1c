/**
 * The one list of merge methods. Adding a method is one file plus one line here; nothing
 * registers itself on import, so this file is the whole truth about what exists.
 */
import { MergeInputError } from '../errors';
import { adaMerging } from './adamerging';
import { apl } from './apl';
import { arceeFusion } from './arcee-fusion';
import { breadcrumbs } from './breadcrumbs';
import { breadcrumbsTies } from './breadcrumbs-ties';
import { dareLinear } from './dare-linear';
import { dareTies } from './dare-ties';
import { della } from './della';
import { dellaLinear } from './della-linear';
import { fisher } from './fisher';
import { linear } from './linear';
import { karcher } from './karcher';
import { magnitude } from './magnitude';
import { multislerp } from './multislerp';
import { nuslerp } from './nuslerp';
import { passthrough } from './passthrough';
import { sce } from './sce';
import { modelStock } from './model-stock';
import { nearswap } from './nearswap';
import { slerpMethod } from './slerp';
import { taskArithmetic } from './task-arithmetic';
import { ties } from './ties';
import { regmean } from './regmean';
import { MergeMethod } from './types';

export const MERGE_METHODS: readonly MergeMethod[] = [
  linear,
  taskArithmetic,
  ties,
  dareLinear,
  dareTies,
  magnitude,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
  slerpMethod,
  nuslerp,
  multislerp,
  karcher,
  modelStock,
  nearswap,
  sce,
  arceeFusion,
  passthrough,
  apl,
  fisher,
  regmean,
  adaMerging,
];

const byName = new Map(MERGE_METHODS.map((m) => [m.name, m]));

export function getMergeMethod(name: string): MergeMethod {
  const method = byName.get(name);
  if (!method) {
    throw new MergeInputError(`unknown merge method "${name}"; known: ${MERGE_METHODS.map((m) => m.name).join(', ')}`);
  }
  return method;
}
