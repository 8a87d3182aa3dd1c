/**
 * Which device merges tensors: the GPU kernels when the backend choice asks for WebGPU (or, under
 * `auto`, when the machine has a hardware GPU), else the CPU. One set of kernels per process,
 * opened on first use and kept: pipelines compile once, and worker processes run many merges.
 */
import { BackendChoice } from '../backend-choice';
import { hardwareGpuPresent, sharedOnce } from './dawn';
import { GpuTaskVectorKernels } from './task-vector-kernels';

const sharedKernels = sharedOnce(() => GpuTaskVectorKernels.open());

/** The GPU kernels a merge should use, or undefined for the CPU; `webgpu` without a GPU throws. */
export async function mergeKernelsFor(choice: BackendChoice): Promise<GpuTaskVectorKernels | undefined> {
  if (choice === 'wasm' || choice === 'cpu') return undefined;
  if (choice === 'webgpu') return sharedKernels();
  return (await hardwareGpuPresent()) ? sharedKernels() : undefined;
}
