/** Worker-thread entry: runs TensorJobs sent by the pool and transfers the result bytes back. */
import { parentPort } from 'node:worker_threads';
import { TensorReader } from '../checkpoint/checkpoint';
import { BufferPool, runTensorJob, TensorJob } from './tensor-job';

const reader = new TensorReader();
const buffers = new BufferPool();

parentPort!.on('message', (message: { id: number; job: TensorJob } | { recycle: ArrayBuffer }) => {
  if ('recycle' in message) {
    buffers.give(message.recycle);
    return;
  }
  try {
    const result = runTensorJob(message.job, reader, buffers);
    const buffer = result.bytes.buffer as ArrayBuffer;
    parentPort!.postMessage({ id: message.id, result }, [buffer]);
  } catch (err) {
    const error = err as Error & { file?: string; tensor?: string; reason?: string };
    parentPort!.postMessage({
      id: message.id,
      error: { name: error.name, message: error.message, file: error.file, tensor: error.tensor, reason: error.reason },
    });
  }
});
