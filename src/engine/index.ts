/** The engine as a library: checkpoints, merge methods, merge planning and running. */
export * from './errors';
export * from './progress';
export * from './checkpoint/dtype';
export * from './checkpoint/safetensors';
export * from './checkpoint/checkpoint';
export * from './checkpoint/writer';
export * from './checkpoint/files';
export * from './checkpoint/inspect';
export * from './methods/types';
export { MERGE_METHODS, getMergeMethod } from './methods/registry';
export * from './merge/config';
export * from './merge/plan';
export * from './merge/run';
export { writeSyntheticFamily } from './zoo/synthetic';
