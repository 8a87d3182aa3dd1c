/** Per-layer statistics and histograms of partition scores, against values worked out by hand. */
import { histogram, layerImportance } from '../src/engine/apl/statistics';

it('groups row partitions by layer: mean, spread, extremes and top partitions', () => {
  const names = ['trunk.layers.0[0]', 'trunk.layers.0[1]', 'trunk.layers.0[2]', 'trunk.layers.1[0]', 'trunk.layers.1[1]'];
  const values = Float64Array.from([1, 4, 1, -2, 2]);
  expect(layerImportance(names, values, 2)).toEqual([
    { layer: 'trunk.layers.0', partitions: 3, mean: 2, spread: Math.sqrt(2), min: 1, max: 4, top: [{ partition: 'trunk.layers.0[1]', value: 4 }, { partition: 'trunk.layers.0[0]', value: 1 }] },
    { layer: 'trunk.layers.1', partitions: 2, mean: 0, spread: 2, min: -2, max: 2, top: [{ partition: 'trunk.layers.1[1]', value: 2 }, { partition: 'trunk.layers.1[0]', value: -2 }] },
  ]);
});

it('bins scores in equal widths from the smallest to the largest, the last bin closed', () => {
  expect(histogram(Float64Array.from([0, 1, 2, 3, 4, 4]), 2)).toEqual([
    { lower: 0, upper: 2, count: 2 },
    { lower: 2, upper: 4, count: 4 },
  ]);
  expect(histogram(Float64Array.from([5, 5, 5]), 10)).toEqual([{ lower: 5, upper: 5, count: 3 }]);
  expect(histogram(new Float64Array(0), 3)).toEqual([]);
  expect(() => histogram(Float64Array.from([1]), 0)).toThrow('bins must be a whole number from 1 to 1000, got 0');
});
