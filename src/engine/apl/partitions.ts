/**
 * Partition schemes over a model's mergeable (trunk) parameters, as APL defines them:
 *  - model: the whole task vector is one partition;
 *  - layer: one partition per weight tensor together with its bias;
 *  - row:   one partition per output unit — row i of a weight matrix together with bias i
 *           (the hidden-state level). A 1-D tensor with no weight partner has one per element.
 * A scheme maps every row of every trunk tensor to a partition id, so that per-element
 * quantities reduce to per-partition sums with one pass.
 */

export type PartitionLevel = 'model' | 'layer' | 'row';
export const PARTITION_LEVELS: readonly PartitionLevel[] = ['model', 'layer', 'row'];

export interface PartitionScheme {
  level: PartitionLevel;
  count: number;
  /** Human-readable name of each partition, e.g. "trunk.layers.0[17]". */
  names: string[];
  /** Parameter count of each partition. */
  sizes: Float64Array;
  /** Per trunk tensor: the partition of each row (first axis). */
  rows: Map<string, Int32Array>;
  /** Per trunk tensor: its shape. */
  shapes: Map<string, number[]>;
  /** Partition id → the tensor group (weight and bias) it lives in. */
  groupOf: Int32Array;
  /** Tensor groups in order: the tensors of each. */
  groups: string[][];
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

export function buildPartitions(level: PartitionLevel, trunkShapes: Map<string, number[]>): PartitionScheme {
  const groups = tensorGroups(trunkShapes);
  const rows = new Map<string, Int32Array>();
  const names: string[] = [];
  const sizes: number[] = [];
  const groupOf: number[] = [];
  const rowSize = (name: string) => trunkShapes.get(name)!.slice(1).reduce((a, b) => a * b, 1);
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
    } else {
      if (level === 'layer' || names.length === 0) {
        names.push(level === 'model' ? 'model' : groupLabel(group));
        sizes.push(0);
        groupOf.push(level === 'model' ? -1 : g);
      }
      const id = names.length - 1;
      for (const name of group) {
        sizes[id] += trunkShapes.get(name)!.reduce((a, b) => a * b, 1);
        rows.set(name, new Int32Array(rowCount).fill(id));
      }
    }
  });
  return { level, count: names.length, names, sizes: Float64Array.from(sizes), rows, shapes: trunkShapes, groupOf: Int32Array.from(groupOf), groups };
}
