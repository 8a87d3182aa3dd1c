/**
 * Partition schemes over a model's mergeable (trunk) parameters, as APL defines them:
 *  - model: the whole task vector is one partition;
 *  - layer: one partition per weight tensor together with its bias;
 *  - row:   one partition per output unit — row i of a weight matrix together with bias i
 *           (the hidden-state level). A 1-D tensor with no weight partner has one per element;
 *  - unit:  one partition per hidden unit of the family's unit layers (an MLP's hidden layers, a
 *           transformer's feed-forward blocks) — the unit's incoming row(s) and bias, and the
 *           outgoing column of the weight that reads it; every other tensor by row, as above.
 * Units overlap where a weight both reads one layer's units and makes the next's (an MLP's middle
 * layers): its element (i, j) is in unit i of its own layer and unit j of the layer before. So a
 * scheme maps every row of every trunk tensor to a partition (or none, for a weight whose rows are
 * not units and whose columns are), and the columns of unit readers to partitions, and per-element
 * quantities reduce to per-partition sums in one pass (`addPartitionSums`).
 */
import { HiddenUnits } from '../families/types';

export type PartitionLevel = 'model' | 'layer' | 'row' | 'unit';
export const PARTITION_LEVELS: readonly PartitionLevel[] = ['model', 'layer', 'row', 'unit'];

/** A range of partition ids that reach the same tensors (what a partition's intervention changes). */
export interface PartitionSpan {
  first: number;
  count: number;
  tensors: string[];
}

export interface PartitionScheme {
  level: PartitionLevel;
  count: number;
  /** Human-readable name of each partition, e.g. "trunk.layers.0[17]". */
  names: string[];
  /** Parameter count of each partition (an element in two units counts in both). */
  sizes: Float64Array;
  /** Per trunk tensor: the partition of each row (first axis), or −1 where its rows are not partitions. */
  rows: Map<string, Int32Array>;
  /** Per trunk weight that reads hidden units (unit level only): the partition of each column. */
  columns: Map<string, Int32Array>;
  /** Per trunk tensor: its shape. */
  shapes: Map<string, number[]>;
  /** Partition id → the tensor group (weight and bias) it lives in (a unit: its first producer's). */
  groupOf: Int32Array;
  /** Tensor groups in order: the tensors of each. */
  groups: string[][];
  /** Partition ids by the tensors they reach, in order; together they cover every id once. */
  spans: PartitionSpan[];
}

/** Groups `x.weight` with `x.bias`; any other tensor stands alone. In the given order. */
export function tensorGroups(shapes: Map<string, number[]>): string[][] {
  const groups: string[][] = [];
  const placed = new Set<string>();
  for (const name of shapes.keys()) {
    if (placed.has(name)) continue;
    const group = [name];
    placed.add(name);
    if (name.endsWith('.weight')) {
      const bias = `${name.slice(0, -'.weight'.length)}.bias`;
      const biasShape = shapes.get(bias);
      if (biasShape && biasShape.length === 1 && biasShape[0] === shapes.get(name)![0]) {
        group.push(bias);
        placed.add(bias);
      }
    }
    groups.push(group);
  }
  return groups;
}

function groupLabel(group: string[]): string {
  return group[0].replace(/\.weight$/, '');
}

const elementsOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The partitions of `level` over the trunk. `units` (the family's hidden-unit layers) is read at
 * unit level only, where it must be given.
 */
export function buildPartitions(level: PartitionLevel, trunkShapes: Map<string, number[]>, units?: readonly HiddenUnits[]): PartitionScheme {
  if (level === 'unit') return buildUnitPartitions(trunkShapes, units);
  const groups = tensorGroups(trunkShapes);
  const rows = new Map<string, Int32Array>();
  const names: string[] = [];
  const sizes: number[] = [];
  const groupOf: number[] = [];
  const spans: PartitionSpan[] = [];
  const rowSize = (name: string) => elementsOf(trunkShapes.get(name)!.slice(1));
  groups.forEach((group, g) => {
    const rowCount = trunkShapes.get(group[0])![0] ?? 1;
    if (level === 'row') {
      const first = names.length;
      for (let r = 0; r < rowCount; r++) {
        names.push(`${groupLabel(group)}[${r}]`);
        sizes.push(group.reduce((acc, name) => acc + rowSize(name), 0));
        groupOf.push(g);
      }
      for (const name of group) rows.set(name, Int32Array.from({ length: rowCount }, (_, r) => first + r));
      spans.push({ first, count: rowCount, tensors: group });
    } else {
      if (level === 'layer' || names.length === 0) {
        names.push(level === 'model' ? 'model' : groupLabel(group));
        sizes.push(0);
        groupOf.push(level === 'model' ? -1 : g);
        spans.push({ first: names.length - 1, count: 1, tensors: [] });
      }
      const id = names.length - 1;
      spans[spans.length - 1].tensors.push(...group);
      for (const name of group) {
        sizes[id] += elementsOf(trunkShapes.get(name)!);
        rows.set(name, new Int32Array(rowCount).fill(id));
      }
    }
  });
  return { level, count: names.length, names, sizes: Float64Array.from(sizes), rows, columns: new Map(), shapes: trunkShapes, groupOf: Int32Array.from(groupOf), groups, spans };
}

/** Checks a family's unit layers against the trunk: producers [U, …] with U rows each, a consumer [·, U]. */
function checkUnits(trunkShapes: Map<string, number[]>, units: readonly HiddenUnits[]): void {
  const claimed = new Map<string, string>();
  const claim = (name: string, role: string) => {
    if (claimed.has(name)) throw new Error(`hidden units: "${name}" is ${claimed.get(name)} and ${role}; a weight makes one layer of units and reads at most one`);
    claimed.set(name, role);
  };
  for (const { producers, consumer } of units) {
    const unitCount = trunkShapes.get(producers[0])?.[0];
    for (const name of producers) {
      const shape = trunkShapes.get(name);
      if (!shape) throw new Error(`hidden units: "${name}" is not a trunk tensor`);
      if (shape[0] !== unitCount) throw new Error(`hidden units: "${name}" has ${shape[0]} rows, "${producers[0]}" ${unitCount}: producers of one layer of units must agree`);
      claim(name, 'a producer');
    }
    if (consumer === undefined) continue;
    const shape = trunkShapes.get(consumer);
    if (!shape) throw new Error(`hidden units: "${consumer}" is not a trunk tensor`);
    if (shape.length !== 2 || shape[1] !== unitCount) throw new Error(`hidden units: "${consumer}" has shape ${JSON.stringify(shape)}, but it must read the ${unitCount} units of "${producers[0]}" as its columns`);
    claim(`${consumer} columns`, 'a consumer');
  }
}

function buildUnitPartitions(trunkShapes: Map<string, number[]>, units: readonly HiddenUnits[] | undefined): PartitionScheme {
  if (!units || units.length === 0) throw new Error('level: unit needs the model family to declare its hidden units (this family declares none); use level: row');
  checkUnits(trunkShapes, units);
  const groups = tensorGroups(trunkShapes);
  const producedBy = new Map<string, number>(units.flatMap((u, i) => u.producers.map((name) => [name, i] as const)));
  const consumedBy = new Map<string, number>(units.flatMap((u, i) => (u.consumer === undefined ? [] : [[u.consumer, i] as const])));
  const rows = new Map<string, Int32Array>();
  const columns = new Map<string, Int32Array>();
  const names: string[] = [];
  const sizes: number[] = [];
  const groupOf: number[] = [];
  const spans: PartitionSpan[] = [];
  const firstUnit = new Array<number>(units.length).fill(-1);
  const rowSize = (name: string) => elementsOf(trunkShapes.get(name)!.slice(1));
  const allocate = (label: string, count: number, g: number, tensors: string[]) => {
    const first = names.length;
    for (let r = 0; r < count; r++) {
      names.push(`${label}[${r}]`);
      sizes.push(0);
      groupOf.push(g);
    }
    spans.push({ first, count, tensors });
    return first;
  };
  // Rows first: a layer of units gets its ids at its first producer, every other row-partitioned tensor as at row level.
  groups.forEach((group, g) => {
    const rowCount = trunkShapes.get(group[0])![0] ?? 1;
    const unit = producedBy.get(group[0]);
    if (unit !== undefined) {
      if (firstUnit[unit] < 0) {
        const { producers, consumer } = units[unit];
        const tensors = [...producers.flatMap((p) => groups.find((other) => other[0] === p)!), ...(consumer === undefined ? [] : [consumer])];
        firstUnit[unit] = allocate(groupLabel(group), rowCount, g, tensors);
      }
      for (const name of group) rows.set(name, Int32Array.from({ length: rowCount }, (_, r) => firstUnit[unit] + r));
      return;
    }
    // A weight that reads units and makes none: its rows are not partitions (its elements belong to its columns' units); its bias keeps one partition per element.
    const readsUnits = consumedBy.has(group[0]) && !producedBy.has(group[0]);
    for (const name of group) {
      if (readsUnits && name === group[0]) rows.set(name, new Int32Array(rowCount).fill(-1));
      else rows.set(name, Int32Array.from({ length: trunkShapes.get(name)![0] ?? 1 }, (_, r) => r));
    }
    const own = group.filter((name) => !(readsUnits && name === group[0]));
    if (own.length > 0) {
      const first = allocate(groupLabel(own), rowCount, g, own);
      for (const name of own) rows.set(name, rows.get(name)!.map((r) => first + r));
    }
  });
  units.forEach(({ consumer }, i) => {
    if (consumer === undefined) return;
    const [, unitCount] = trunkShapes.get(consumer)!;
    columns.set(consumer, Int32Array.from({ length: unitCount }, (_, c) => firstUnit[i] + c));
  });
  for (const [name, partitionOfRow] of rows) {
    const size = rowSize(name);
    partitionOfRow.forEach((k) => k >= 0 && (sizes[k] += size));
  }
  for (const [name, partitionOfColumn] of columns) {
    const height = trunkShapes.get(name)![0];
    partitionOfColumn.forEach((k) => (sizes[k] += height));
  }
  return { level: 'unit', count: names.length, names, sizes: Float64Array.from(sizes), rows, columns, shapes: trunkShapes, groupOf: Int32Array.from(groupOf), groups, spans };
}

/**
 * Adds, for every element j of trunk tensor `name`, valueAt(j) to the partition of its row and to
 * that of its column (where it has one): per-element quantities (g·δ, F·δ²) summed per partition.
 */
export function addPartitionSums(scheme: PartitionScheme, name: string, valueAt: (j: number) => number, into: Float64Array): void {
  const partitionOfRow = scheme.rows.get(name)!;
  const partitionOfColumn = scheme.columns.get(name);
  const rowLength = elementsOf(scheme.shapes.get(name)!) / partitionOfRow.length;
  for (let r = 0; r < partitionOfRow.length; r++) {
    const k = partitionOfRow[r];
    let sum = 0;
    const at = r * rowLength;
    if (partitionOfColumn) {
      for (let c = 0; c < rowLength; c++) {
        const v = valueAt(at + c);
        sum += v;
        into[partitionOfColumn[c]] += v;
      }
    } else for (let j = at; j < at + rowLength; j++) sum += valueAt(j);
    if (k >= 0) into[k] += sum;
  }
}

/** Whether partition k reaches tensor `name` (by a row or a column). */
export function partitionReaches(scheme: PartitionScheme, name: string, k: number): boolean {
  return scheme.rows.get(name)?.includes(k) === true || scheme.columns.get(name)?.includes(k) === true;
}

/** The span that holds partition k. */
export function spanOf(scheme: PartitionScheme, k: number): PartitionSpan {
  let low = 0;
  let high = scheme.spans.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (scheme.spans[mid].first <= k) low = mid;
    else high = mid - 1;
  }
  return scheme.spans[low];
}
